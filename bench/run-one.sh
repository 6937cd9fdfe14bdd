#!/usr/bin/env bash
# Start one server, run one scenario against it, stop the server (by PID).
# Usage: ./run-one.sh <switchboard|switchboard-flask-sock|node-socketio|flask-socketio|flask-socketio-simplews> <s1|s2> <tag> [extra bench.js args...]
# switchboard: gunicorn (gunicorn.conf.py, one gevent worker) from the repo root, Redis engine with
# REDIS_PREFIX=bench:, PostgreSQL database $SB_BENCH_DB (default sb_bench, created and migrated by run.sh).
# switchboard-flask-sock (variant): the same, with /ws served by flask-sock + simple-websocket
# (bench/flask_sock_variant.py) instead of realtime/websocket.py.
set -u
cd "$(dirname "$0")"
SERVER=$1; SCEN=$2; TAG=$3; shift 3
{ ulimit -n 65535 || ulimit -n "$(ulimit -Hn)"; } 2>/dev/null
mkdir -p results/raw
LOG=results/raw/$SERVER-$SCEN-$TAG.server.log
ADAPTER=socketio; HEALTH=/health
case $SERVER in
  switchboard|switchboard-flask-sock)
    ADAPTER=switchboard; HEALTH=/healthz
    if [ "$SERVER" = switchboard ]; then PORT=${SB_BENCH_PORT:-3004}; APP='app:create_app()'
    else PORT=3005; APP='bench.flask_sock_variant:create_app()'
      ../.venv/bin/pip install -q -r requirements-flask-sock.txt || exit 1; fi
    # presence counts left by an earlier killed run would be reaped (and announced) during this one
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern 'bench:pr:*' | xargs -r redis-cli -h 127.0.0.1 -p 6379 del >/dev/null
    (cd .. && exec env REDIS_URL=redis://127.0.0.1:6379/0 \
        DATABASE_URL="postgresql://postgres@127.0.0.1:5432/${SB_BENCH_DB:-sb_bench}" \
        REDIS_PREFIX=bench: PORT=$PORT SB_BIND_LOCAL=1 WEB_CONCURRENCY=1 \
        .venv/bin/gunicorn -c gunicorn.conf.py "$APP") >"$LOG" 2>&1 & SPID=$! ;;
  node-socketio)  PORT=3001; (cd node-socketio && PORT=$PORT exec node server.js) >"$LOG" 2>&1 & SPID=$! ;;
  flask-socketio) PORT=3002; (cd flask-socketio && PORT=$PORT exec .venv/bin/python server.py) >"$LOG" 2>&1 & SPID=$! ;;
  # variant: same server.py in a venv WITHOUT gevent-websocket (engine.io then uses simple-websocket), plain gevent pywsgi
  flask-socketio-simplews) PORT=3003; (cd flask-socketio && BENCH_WS=simple PORT=$PORT exec .venv-simplews/bin/python server.py) >"$LOG" 2>&1 & SPID=$! ;;
  *) echo "unknown server $SERVER"; exit 2 ;;
esac
stop_server() {
  # TERM the server (gunicorn: graceful, its workers follow); after 15 s KILL it and its
  # direct children, all by PID.
  local kids
  kids=$(pgrep -P "$SPID" 2>/dev/null | tr '\n' ' ')
  kill "$SPID" 2>/dev/null
  for _ in $(seq 1 75); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.2; done
  for p in $SPID $kids; do kill -9 "$p" 2>/dev/null; done
}
trap stop_server EXIT
for i in $(seq 1 100); do   # bounded: 20 s
  curl -sf "http://127.0.0.1:$PORT$HEALTH" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT$HEALTH" >/dev/null || { echo "server did not start"; cat "$LOG"; exit 1; }
REDIS_PID=$(redis-cli -h 127.0.0.1 -p 6379 info server 2>/dev/null | awk -F: '/^process_id/{print $2}' | tr -d '\r')
echo "== $SERVER $SCEN $TAG server_pid=$SPID redis_pid=$REDIS_PID ulimit_n=$(ulimit -n)"
timeout 900 node client/bench.js --scenario "$SCEN" --adapter "$ADAPTER" --base "http://127.0.0.1:$PORT" \
  --label "$SERVER" --server-pid "$SPID" ${REDIS_PID:+--redis-pid $REDIS_PID} \
  --out "results/raw/$SERVER-$SCEN-$TAG.json" "$@"
RC=$?
echo "== exit $RC"
exit $RC
