#!/usr/bin/env bash
# `make bench-100k`: 100 000 idle WebSockets on the box, over six web processes (the file limit
# here is 20 000 per process) from six client processes, all on one topic; one publish must reach
# every one. Switchboard, then the Node socket.io peer, same session (client/cluster.js --mode idle).
# Bounded: each run has a 900 s deadline. Loopback only.
set -u
cd "$(dirname "$0")"
(cd client && npm install --no-audit --no-fund --silent) || exit 1
(cd node-socketio && npm install --no-audit --no-fund --silent) || exit 1
DB=${SB_BENCH_DB:-sb_bench}
psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='$DB'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "create database $DB" || exit 1
(cd .. && DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB" .venv/bin/python -m models.migrate) || exit 1
mkdir -p results/raw
ulimit -n 20000
for srv in switchboard node-socketio; do
  timeout 900 node client/cluster.js --mode idle --server "$srv" --procs 6 --conns "${CONNS:-100000}" \
    --workers 6 --ramp "${RAMP:-500}" --out "results/idle100k-$srv.json" || exit 1
  sleep 5
done
node -e 'for (const s of ["switchboard", "node-socketio"]) { const r = require(`./results/idle100k-${s}.json`);
  console.log(s, `ready ${r.ready}/${r.conns}`, `delivery ${r.deliveryRatio}`, `${(r.rssAfterKb / 1024).toFixed(0)} MiB`,
    `${r.kibPerConn.toFixed(2)} KiB/conn`); }'
