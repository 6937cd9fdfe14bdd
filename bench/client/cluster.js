#!/usr/bin/env node
// Many web processes, many client processes: the measurements one process cannot make.
//
//   idle : --procs web processes, --conns WebSockets (or SSE streams, --transport sse) spread
//          over them from --workers client processes (each under its own file limit), all on one
//          topic; then one publish, counted at every client. Server memory and CPU before and
//          after, per connection. --source-addresses gives each client process its own
//          127.0.0.x source; not the default: Node binds before it connects then, and the
//          kernel's search for a free port took a whole core (each server port has its own
//          range of source ports anyway).
//   storm: --conns clients on the first of --procs web processes, --topics topics, a publisher
//          at --rate events/s through the others; the first process is SIGKILLed (master and
//          worker); the clients reconnect with the JS client's backoff (full jitter,
//          random(0, min(30 s, 500 ms * 2^attempt)), reset after 5 s open) to a process that
//          accepts, resume with `since`, and every event accepted (202) is counted at every
//          client of its topic: received, lost with a word (recovered: false, stream:reset),
//          lost silently, or received twice (as bench/chaos_redis_restart.py counts).
//
//   node client/cluster.js --mode idle  --server switchboard|node-socketio --procs 6 --conns 100000 --workers 6
//   node client/cluster.js --mode storm --server switchboard --procs 3 --conns 10000 --workers 2
//
// Servers are started here (gunicorn with one gevent worker each, as run-one.sh does; or
// node-socketio/server.js), on 127.0.0.1 ports from --port-base, and stopped by their process
// group at the end. Every wait is bounded; the run exits by itself at --deadline.
'use strict';
const fs = require('fs');
const path = require('path');
const http = require('http');
const { spawn, fork, execFileSync } = require('child_process');
const WebSocket = require('ws');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Date.now();
const log = (...x) => console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...x);

function parseArgs(argv) {
  const a = {};
  for (let i = 2; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const key = argv[i].slice(2);
    a[key] = (i + 1 < argv.length && !argv[i + 1].startsWith('--')) ? argv[++i] : 'true';
  }
  return a;
}

// ------------------------------------------------------------------ worker (one client process)
if (process.argv[2] === 'worker') {
  const adapterOf = (name) => require(path.resolve(__dirname, 'adapters', name + '.js'));
  let cfg = null; let adapter = null;
  const clients = [];
  let live = [];
  const stat = { opened: 0, ready: 0, failed: 0, errors: {}, delivered: 0, lastDelivery: 0, resumed: 0, retries: 0, refusedPorts: 0 };
  const noteErr = (k) => { stat.errors[k] = (stat.errors[k] || 0) + 1; };
  const report = (type, extra) => process.send({ type, stat, ...(extra || {}) });

  function sbUrl(c) {
    return adapter.url({ base: `http://127.0.0.1:${c.port}`, room: c.room, index: c.index });
  }

  function openSse(c) {
    // One Server-Sent Events stream (GET /events), ready at its first chunk (": open").
    const token = new URL(sbUrl(c)).searchParams.get('token');
    const req = http.get({ host: '127.0.0.1', port: c.port, agent: false, localAddress: cfg.src || undefined,
      path: `/events?topics=product:${c.room}&token=${token}`, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) { noteErr('status:' + res.statusCode); stat.failed++; res.resume(); return; }
      stat.opened++;
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        if (!c.everReady) { c.everReady = true; stat.ready++; }
        if (chunk.includes('event: hello')) { stat.delivered++; stat.lastDelivery = now(); }
      });
      res.on('error', () => {});
    });
    req.on('error', (e) => { noteErr('err:' + (e.code || e.message)); if (!c.everReady) stat.failed++; });
    req.setTimeout(15000, () => { if (!c.everReady) { noteErr('timeout'); req.destroy(); } });
    c.ws = { terminate: () => req.destroy() };
  }

  function open(c) {
    if (cfg.transport === 'sse') { openSse(c); return; }
    const opts = { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 15000 };
    if (cfg.src) opts.localAddress = cfg.src;
    const ws = new WebSocket(sbUrl(c), opts);
    c.ws = ws; c.openedAt = 0; c.t0 = now();
    let acked = false;
    ws.on('open', () => {
      stat.opened++;
      if (cfg.mode === 'storm') {
        const op = { op: 'subscribe', topic: `product:${c.room}`, ref: 's' };
        if (c.cursor) op.since = c.cursor;
        ws.send(JSON.stringify(op));
      } else {
        const r = adapter.onOpen(ws, { room: c.room, index: c.index });
        if (r && r.control === 'ready') onReady();
      }
    });
    const onReady = () => {
      if (acked) return;
      acked = true; c.openedAt = now();
      if (!c.everReady) { c.everReady = true; stat.ready++; }
      else if (c.down) { c.down = false; c.resumedAt = now(); stat.resumed++; }
      c.stable = setTimeout(() => { c.attempt = 0; }, 5000);  // the JS client's stableAfter
    };
    ws.on('message', (buf) => {
      const text = buf.toString();
      if (cfg.mode === 'storm') {
        let m; try { m = JSON.parse(text); } catch (e) { return; }
        if (m.event === 'ack' && m.ref === 's') {
          if (!m.ok) { noteErr('refused:' + text.slice(0, 60)); ws.terminate(); return; }
          if (c.cursor && !m.data.recovered) c.lostWord = true;
          onReady();
        } else if (m.event === 'stream:reset') c.lostWord = true;
        else if (m.event === 'tick') { c.cursor = m.id; c.got.push(m.data.seq); }
        else if (m.event === 'marker') { c.cursor = m.id; c.marked = true; }
        return;
      }
      const r = adapter.parse(text);
      if (r.control) {
        if (r.reply !== undefined) { try { ws.send(r.reply); } catch (e) { /* closing */ } }
        if (r.control === 'ready') onReady();
        else if (r.control === 'error') { noteErr('proto-error'); ws.terminate(); }
      } else if (r.event === 'hello') { stat.delivered++; stat.lastDelivery = now(); }
    });
    ws.on('error', (e) => {
      const code = e.code || String(e.message).slice(0, 40);
      noteErr('err:' + code);
      if (process.env.CLUSTER_DEBUG && stat.failed < 5) console.error(`[worker] ${code} after ${now() - c.t0} ms, opened=${c.openedAt !== undefined && ws.readyState}`, e.message);
      // A passive health check, as a load balancer's: a port that refuses is not tried again.
      if (code === 'ECONNREFUSED' && live.length > 1) { live = live.filter((p) => p !== c.port); stat.refusedPorts++; }
    });
    ws.on('close', () => {
      clearTimeout(c.stable);
      if (!acked && !c.everReady) { stat.failed++; return; }
      if (cfg.mode !== 'storm' || c.done) return;
      c.down = true; retry(c);
    });
  }

  function retry(c) {
    const exp = Math.min(30000, 500 * Math.pow(2, c.attempt));
    const delay = Math.floor(Math.random() * exp);
    c.attempt = Math.min(c.attempt + 1, 30);
    stat.retries++;
    setTimeout(() => {
      if (c.done) return;
      c.port = live[Math.floor(Math.random() * live.length)];
      open(c);
    }, delay);
  }

  process.on('message', async (msg) => {
    if (msg.type === 'start') {
      cfg = msg.cfg; adapter = adapterOf(cfg.adapter); live = cfg.ports.slice();
      for (let i = 0; i < cfg.n; i++) {
        const index = cfg.first + i;
        clients.push({ index, port: cfg.placeFirst ? cfg.ports[0] : cfg.ports[index % cfg.ports.length], room: cfg.roomOf === 'all' ? 'all' : String(index % cfg.topics),
          ws: null, attempt: 0, cursor: null, got: [], lostWord: false, marked: false, down: false, everReady: false, resumedAt: 0, done: false });
      }
      const t0 = now(); let i = 0;
      const ticker = setInterval(() => report('progress'), 1000);
      while (i < cfg.n) {   // bounded: n opens in all
        const due = Math.min(cfg.n, Math.floor(((now() - t0) / 1000) * cfg.ramp) + 1);
        while (i < due) open(clients[i++]);
        if (i < cfg.n) await sleep(5);
      }
      const until = now() + cfg.settleMs;
      while (stat.ready + stat.failed < cfg.n && now() < until) await sleep(50);
      clearInterval(ticker);
      report('settled', { rampS: (now() - t0) / 1000 });
    } else if (msg.type === 'report') {
      report('progress');
    } else if (msg.type === 'tally') {
      // accepted: {room: [seq...]}; count per client as the chaos harness does
      let received = 0; let lostWord = 0; let lostSilent = 0; let dup = 0; let unmarked = 0; let expected = 0;
      const resumeMs = [];
      for (const c of clients) {
        c.done = true;
        if (!c.everReady) continue;   // never subscribed: counted as failed, not as losing events
        const acc = msg.accepted[c.room] || [];
        const got = new Set(c.got);
        dup += c.got.length - got.size;
        expected += acc.length;
        let missing = 0;
        for (const s of acc) if (!got.has(s)) missing++;
        received += acc.length - missing;
        if (c.lostWord) lostWord += missing; else lostSilent += missing;
        if (!c.marked) unmarked++;
        if (c.resumedAt) resumeMs.push(c.resumedAt - msg.killT);
        try { c.ws && c.ws.terminate(); } catch (e) { /* */ }
      }
      report('tally', { t: { expected, received, lostWord, lostSilent, dup, unmarked, resumeMs } });
    } else if (msg.type === 'stop') {
      for (const c of clients) { c.done = true; try { c.ws && c.ws.terminate(); } catch (e) { /* */ } }
      setTimeout(() => process.exit(0), 200);
    }
  });
  process.on('disconnect', () => process.exit(0));
  return;
}

// ------------------------------------------------------------------ driver
const A = parseArgs(process.argv);
const num = (k, d) => (A[k] !== undefined ? Number(A[k]) : d);
const CFG = {
  mode: A.mode || 'idle', server: A.server || 'switchboard',
  procs: num('procs', 6), conns: num('conns', 100000), workers: num('workers', 6),
  ramp: num('ramp', 1000), topics: num('topics', 100), rate: num('rate', 100),
  portBase: num('port-base', 3100), settle: num('settle-timeout', 120), deadline: num('deadline', 900),
  transport: A.transport || 'ws', out: A.out || null, db: process.env.SB_BENCH_DB || 'sb_bench',
};
setTimeout(() => { console.error('[cluster] deadline reached'); cleanup().then(() => process.exit(3)); }, CFG.deadline * 1000).unref();
const ROOT = path.resolve(__dirname, '..', '..');
const servers = [];
const workers = [];

function startServer(i) {
  const port = CFG.portBase + i;
  const logf = fs.openSync(path.join(__dirname, '..', 'results', 'raw', `cluster-${CFG.server}-${i}.log`), 'w');
  let child;
  if (CFG.server === 'switchboard') {
    child = spawn(path.join(ROOT, '.venv/bin/gunicorn'), ['-c', 'gunicorn.conf.py', 'app:create_app()'], {
      cwd: ROOT, detached: true, stdio: ['ignore', logf, logf],
      env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:6379/0', DATABASE_URL: `postgresql://postgres@127.0.0.1:5432/${CFG.db}`,
        REDIS_PREFIX: 'bench:', PORT: String(port), SB_BIND_LOCAL: '1', WEB_CONCURRENCY: '1' } });
  } else {
    child = spawn('node', ['server.js'], { cwd: path.join(__dirname, '..', 'node-socketio'), detached: true,
      stdio: ['ignore', logf, logf], env: { ...process.env, PORT: String(port) } });
  }
  return { i, port, pid: child.pid, child, health: CFG.server === 'switchboard' ? '/healthz' : '/health' };
}

function get(port, p) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 2000 }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', () => resolve(0)); req.on('timeout', () => { req.destroy(); resolve(0); });
  });
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
function publish(port, room, event, data) {
  const adapter = require(path.resolve(__dirname, 'adapters', (CFG.server === 'switchboard' ? 'switchboard' : 'socketio') + '.js'));
  const r = adapter.publish({ room, event, data });
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: r.path, method: r.method, headers: r.headers, agent, timeout: 10000 }, (res) => {
      res.resume(); res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0)); req.on('timeout', () => { req.destroy(); resolve(0); });
    req.end(r.body);
  });
}

function treeRssKb(root) {
  let out = 0; let pids = [];
  try { pids = execFileSync('ps', ['-o', 'pid=', '--ppid', String(root)]).toString().split(/\s+/).filter(Boolean); } catch (e) { /* none */ }
  try {
    for (const p of [String(root), ...pids]) {
      const m = fs.readFileSync(`/proc/${p}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
      if (m) out += Number(m[1]);
    }
  } catch (e) { /* gone */ }
  return out;
}
function treeCpuS(root) {
  let ticks = 0; let pids = [];
  try { pids = execFileSync('ps', ['-o', 'pid=', '--ppid', String(root)]).toString().split(/\s+/).filter(Boolean); } catch (e) { /* none */ }
  for (const p of [String(root), ...pids]) {
    try {
      const st = fs.readFileSync(`/proc/${p}/stat`, 'utf8'); const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch (e) { /* gone */ }
  }
  return ticks / 100;
}
const serversCpuS = () => servers.filter((s) => !s.dead).reduce((a, s) => a + treeCpuS(s.pid), 0);
const serversRssKb = () => servers.filter((s) => !s.dead).reduce((a, s) => a + treeRssKb(s.pid), 0);

const alive = (pid) => { try { process.kill(-pid, 0); return true; } catch (e) { return false; } };
async function cleanup() {
  for (const w of workers) { try { w.proc.send({ type: 'stop' }); } catch (e) { /* */ } }
  for (const s of servers) { try { process.kill(-s.pid, 'SIGTERM'); } catch (e) { /* gone */ } }
  // the next run binds the same ports: wait for these to be gone (KILL after 15 s)
  for (let k = 0; k < 75 && servers.some((s) => alive(s.pid)); k++) await sleep(200);
  for (const s of servers) { try { process.kill(-s.pid, 'SIGKILL'); } catch (e) { /* gone */ } }
}
process.on('SIGINT', () => { cleanup().then(() => process.exit(130)); });

function waitAll(type, timeoutMs) {
  return Promise.race([
    Promise.all(workers.map((w) => new Promise((resolve) => {
      const on = (m) => { if (m.type === type) { w.proc.off('message', on); resolve(m); } };
      w.proc.on('message', on);
    }))),
    sleep(timeoutMs).then(() => null),
  ]);
}
const sum = (k) => workers.reduce((a, w) => a + ((w.last && w.last[k]) || 0), 0);
const pct = (xs, p) => { if (!xs.length) return null; const s = xs.slice().sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

async function main() {
  fs.mkdirSync(path.join(__dirname, '..', 'results', 'raw'), { recursive: true });
  if (CFG.server === 'switchboard') {
    // presence counts left by an earlier killed run would be reaped (and announced) during this one
    try { execFileSync('bash', ['-c', "redis-cli --scan --pattern 'bench:pr:*' | xargs -r redis-cli del >/dev/null"]); } catch (e) { /* */ }
  }
  for (let i = 0; i < CFG.procs; i++) {
    if (await get(CFG.portBase + i, '/')) throw new Error(`port ${CFG.portBase + i} is taken: an earlier run still up?`);
  }
  for (let i = 0; i < CFG.procs; i++) servers.push(startServer(i));
  for (const s of servers) {
    let ok = false;
    for (let k = 0; k < 150 && !ok; k++) { ok = (await get(s.port, s.health)) === 200; if (!ok) await sleep(200); }
    if (!ok) throw new Error(`server ${s.i} on ${s.port} did not start`);
  }
  await sleep(1000);
  const rssBefore = serversRssKb(); const cpuBefore = serversCpuS();
  log(`${CFG.procs} ${CFG.server} processes up, RSS ${Math.round(rssBefore / 1024)} MiB`);

  const storm = CFG.mode === 'storm';
  const ports = servers.map((s) => s.port);
  const per = Math.ceil(CFG.conns / CFG.workers);
  for (let w = 0; w < CFG.workers; w++) {
    const n = Math.min(per, CFG.conns - w * per);
    const proc = fork(__filename, ['worker'], { execArgv: ['--max-old-space-size=4096'] });
    const rec = { proc, last: null };
    proc.on('message', (m) => { if (m.stat) rec.last = m.stat; });
    workers.push(rec);
    proc.send({ type: 'start', cfg: { mode: CFG.mode, adapter: CFG.server === 'switchboard' ? 'switchboard' : 'socketio',
      ports, placeFirst: storm, transport: A.transport || 'ws', src: A['source-addresses'] ? `127.0.0.${2 + w}` : null, n, first: w * per, ramp: CFG.ramp / CFG.workers,
      topics: CFG.topics, roomOf: storm ? 'topic' : 'all', settleMs: CFG.settle * 1000 } });
  }
  const t0 = now();
  const progress = setInterval(() => log(`opened ${sum('opened')} ready ${sum('ready')} failed ${sum('failed')}`), 5000);
  const settled = await waitAll('settled', (CFG.conns / CFG.ramp + CFG.settle + 30) * 1000);
  clearInterval(progress);
  const ready = sum('ready'); const failed = sum('failed');
  const errors = {};
  for (const w of workers) for (const [k, v] of Object.entries((w.last && w.last.errors) || {})) errors[k] = (errors[k] || 0) + v;
  log(`settled in ${((now() - t0) / 1000).toFixed(1)} s: ready ${ready}/${CFG.conns}, failed ${failed}`, JSON.stringify(errors));
  await sleep(2000);
  const rssAfter = serversRssKb(); const cpuConnect = serversCpuS() - cpuBefore;
  const result = { mode: CFG.mode, transport: CFG.transport, server: CFG.server, procs: CFG.procs, conns: CFG.conns, workers: CFG.workers, ramp: CFG.ramp,
    ready, failed, errors, settleS: (now() - t0) / 1000, rssBeforeKb: rssBefore, rssAfterKb: rssAfter,
    kibPerConn: ready ? (rssAfter - rssBefore) / ready : null, serverCpuSConnect: cpuConnect,
    cpuMsPerConn: ready ? (1000 * cpuConnect) / (ready + failed) : null, settledOk: !!settled };

  if (!storm) {
    const tp = now();
    const code = await publish(ports[0], 'all', 'hello', { at: tp });
    const until = now() + 30000;
    while (sum('delivered') < ready && now() < until) {
      for (const w of workers) w.proc.send({ type: 'report' });
      await sleep(200);
    }
    Object.assign(result, { publishStatus: code, delivered: sum('delivered'), deliveryRatio: ready ? sum('delivered') / ready : 0,
      lastDeliveryMs: Math.max(...workers.map((w) => (w.last && w.last.lastDelivery) || 0)) - tp });
  } else {
    // publisher through the processes that survive; all clients are subscribed before it starts
    const accepted = {}; let refused = 0; let seq = 0; let publishing = true;
    const others = ports.slice(1);
    const pub = (async () => {
      const start = now();
      while (publishing) {   // bounded by the storm's own deadline below
        seq += 1; const s = seq; const room = String(s % CFG.topics);
        publish(others[s % others.length], room, 'tick', { seq: s }).then((code) => {
          if (code === 202) (accepted[room] = accepted[room] || []).push(s); else refused++;
        });
        const wait = start + (s / CFG.rate) * 1000 - now();
        if (wait > 0) await sleep(wait);
      }
    })();
    await sleep(6000);  // every client open longer than stableAfter, as a settled page is
    const victim = servers[0];
    const killT = now();
    process.kill(-victim.pid, 'SIGKILL');
    victim.dead = true;
    log(`SIGKILLed process 0 (pgid ${victim.pid}) holding ${ready} clients`);
    const until = killT + 60000;
    while (sum('resumed') < ready && now() < until) {
      await sleep(500);
      for (const w of workers) w.proc.send({ type: 'report' });
      if ((now() - killT) % 5000 < 500) log(`resumed ${sum('resumed')}/${ready}`);
    }
    const allBackS = (now() - killT) / 1000;
    log(`resumed ${sum('resumed')}/${ready} in ${allBackS.toFixed(1)} s`);
    await sleep(3000);
    publishing = false; await pub; await sleep(1000);
    for (let t = 0; t < CFG.topics; t++) await publish(others[t % others.length], String(t), 'marker', {});
    await sleep(3000);
    workers.forEach((w) => w.proc.send({ type: 'tally', accepted, killT }));
    const got = await waitAll('tally', 60000);
    const t = { expected: 0, received: 0, lostWord: 0, lostSilent: 0, dup: 0, unmarked: 0 };
    let resumeMs = [];
    for (const m of got || []) { for (const k of Object.keys(t)) t[k] += m.t[k]; resumeMs = resumeMs.concat(m.t.resumeMs); }
    const stormErrors = {};
    for (const w of workers) for (const [k, v] of Object.entries((w.last && w.last.errors) || {})) stormErrors[k] = (stormErrors[k] || 0) + v;
    Object.assign(result, { stormErrors, published: seq, accepted: Object.values(accepted).reduce((a, x) => a + x.length, 0), refused, ...t,
      resumed: resumeMs.length, resumeP50Ms: pct(resumeMs, 0.5), resumeP99Ms: pct(resumeMs, 0.99), resumeMaxMs: pct(resumeMs, 1),
      retries: sum('retries'), refusedPorts: sum('refusedPorts'), allResumedS: allBackS });
  }
  log(JSON.stringify(result));
  if (CFG.out) fs.writeFileSync(CFG.out, JSON.stringify(result, null, 2));
  await cleanup();
  process.exit(0);
}
main().catch((e) => { console.error(e); cleanup().then(() => process.exit(1)); });
