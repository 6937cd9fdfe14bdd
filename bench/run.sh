#!/usr/bin/env bash
# What `make bench` runs: Switchboard against the Node socket.io peer, same session, alternating.
#   S1: 19 000 WebSockets opened at 1 000/s on one process (S1_CONNS, S1_RAMP), and 10 000 at 500/s
#   (the clean CPU per connect: nobody waits), S2: fan-out to 1000 subscribers, RUNS alternating
#   runs each; then summarize.js with switchboard/node ratios; then SSE (10 000 streams at 500/s
#   on one process) and the reconnect storm (client/cluster.js). `make bench-100k` runs the
#   100 000 idle connections (client/cluster.js --mode idle) for both servers.
# Env: RUNS (S2 runs per server, default 2), S1_RUNS (default 1), PROBE=0 drops the 19 000 run,
#      FLASK=1 also installs and runs the Flask-SocketIO peer, S1_CONNS (default 19000), S1_RAMP
#      (default 1000 conn/s), S2_RATES (default 25,50,75,100,150,200,300), SB_BENCH_DB (default sb_bench).
# Every run is bounded (bench.js deadline 600 s, run-one.sh timeout 900 s); traffic goes to 127.0.0.1 only.
set -u
cd "$(dirname "$0")"
RUNS=${RUNS:-2}; S1_RUNS=${S1_RUNS:-1}; S1_CONNS=${S1_CONNS:-19000}; S1_RAMP=${S1_RAMP:-1000}
S2_RATES=${S2_RATES:-25,50,75,100,150,200,300}
DB=${SB_BENCH_DB:-sb_bench}

# --- install
(cd client && npm install --no-audit --no-fund --silent) || exit 1
(cd node-socketio && npm install --no-audit --no-fund --silent) || exit 1
if [ "${FLASK:-0}" = 1 ]; then
  test -x flask-socketio/.venv/bin/python || python3 -m venv flask-socketio/.venv
  flask-socketio/.venv/bin/pip install -q -r flask-socketio/requirements.txt || exit 1
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not running on 127.0.0.1:6379"; exit 1; }
psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='$DB'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "create database $DB" || exit 1
(cd .. && DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB" .venv/bin/python -m models.migrate) || exit 1

SERVERS="switchboard node-socketio"
[ "${FLASK:-0}" = 1 ] && SERVERS="$SERVERS flask-socketio"
one() { ./run-one.sh "$@" 2>&1 | tee "results/raw/$1-$2-$3.client.log"; sleep 3; }
mkdir -p results/raw
# --- S1 (alternating order per run)
for run in $(seq 1 "$S1_RUNS"); do
  ORDER=$SERVERS; (( run % 2 )) || ORDER=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for srv in $ORDER; do one "$srv" s1 "run$run" --conns 10000 --ramp 500 --settle-timeout 90; done
done
if [ "${PROBE:-1}" = 1 ]; then
  for srv in $SERVERS; do one "$srv" s1 probe19k --conns "$S1_CONNS" --ramp "$S1_RAMP" --settle-timeout 90; done
fi
# --- S2 (alternating order per run)
for run in $(seq 1 "$RUNS"); do
  ORDER=$SERVERS; (( run % 2 )) || ORDER=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for srv in $ORDER; do one "$srv" s2 "run$run" --rates "$S2_RATES"; done
done
node summarize.js --baseline switchboard --other node-socketio
# --- SSE and the reconnect storm (Switchboard only: the peers have neither SSE nor resume)
cluster() { (ulimit -n 20000; timeout 900 node client/cluster.js "$@"); sleep 3; }
cluster --mode idle --transport sse --server switchboard --procs 1 --conns 10000 --workers 1 --ramp 500 \
  --port-base 3400 --out results/sse10k-switchboard.json
cluster --mode storm --server switchboard --procs 3 --conns 10000 --workers 2 --ramp 500 --topics 100 \
  --rate 100 --port-base 3500 --out results/storm-switchboard.json
