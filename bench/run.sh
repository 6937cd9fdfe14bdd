#!/usr/bin/env bash
# What `make bench` runs: Switchboard against the Node socket.io peer, same session, alternating.
#   S1: 10 000 connections (one each; same --ramp for both, see BENCHMARKS.md), S2: fan-out to
#   1000 subscribers, RUNS alternating runs each; then summarize.js with switchboard/node ratios.
# Env: RUNS (S2 runs per server, default 2), S1_RUNS (default 1), PROBE=1 adds the 19 000-connection
#      probe, FLASK=1 also installs and runs the Flask-SocketIO peer, S1_RAMP (default 100 conn/s),
#      S2_RATES (default 25,50,75,100,150,200,300), SB_BENCH_DB (default sb_bench).
# Every run is bounded (bench.js deadline 600 s, run-one.sh timeout 900 s); traffic goes to 127.0.0.1 only.
set -u
cd "$(dirname "$0")"
RUNS=${RUNS:-2}; S1_RUNS=${S1_RUNS:-1}; S1_RAMP=${S1_RAMP:-100}
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
  for srv in $ORDER; do one "$srv" s1 "run$run" --ramp "$S1_RAMP"; done
done
if [ "${PROBE:-0}" = 1 ]; then
  for srv in $SERVERS; do one "$srv" s1 probe19k --conns 19000 --ramp "$S1_RAMP" --settle-timeout 90; done
fi
# --- S2 (alternating order per run)
for run in $(seq 1 "$RUNS"); do
  ORDER=$SERVERS; (( run % 2 )) || ORDER=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for srv in $ORDER; do one "$srv" s2 "run$run" --rates "$S2_RATES"; done
done
node summarize.js --baseline switchboard --other node-socketio
