"""The ceiling of this machine for the reservation request, with no work behind it.

    .venv/bin/python bench/flask_floor.py [--seconds 10] [--connections 48]

Two gunicorn processes with Switchboard's worker class serve a Flask app whose
only view parses the reservation's JSON body and answers 201 with a JSON body
of the same size; wrk sends the requests `bench/commerce_reservations.py`
sends, over the same connections. What it prints (requests per second, web CPU
per request) bounds what any Flask view can reach here: a hold also verifies
the token, checks the rate limit, writes to PostgreSQL and publishes to Redis.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from commerce_reservations import CpuMeter, children, wrk
from tests.support.clients import token

HERE = Path(__file__).resolve().parent


@dataclass
class Floor:
    url: str
    proc: subprocess.Popen


def start(port: int) -> Floor:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "api.edges.JsonErrorsWorker", "-w", "1",
         "--worker-connections", "1000", "-b", f"127.0.0.1:{port}", "floor_app:app"],
        cwd=HERE, env={**os.environ, "PYTHONPATH": f"{HERE}:{HERE.parent}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/healthz", timeout=1)
            return Floor(url, proc)
        except requests.ConnectionError:
            time.sleep(0.1)  # the server is starting
    raise SystemExit(f"{url} did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=48)
    args = ap.parse_args()
    servers = [start(port) for port in (8791, 8792)]
    try:
        tokens = Path(tempfile.mkstemp(prefix="sb-tokens-")[1])
        tokens.write_text("\n".join(token(f"buyer-{i}", "customer", ttl=3600) for i in range(256)))
        pids = [c for s in servers for c in children(s.proc.pid)]
        web = CpuMeter(lambda: pids)
        got = wrk(servers, tokens, "bench-hot-0", args.seconds, args.connections)
        answered = got["requests"] - got["status_errors"]
        print(f"floor: {answered / args.seconds:.0f} requests/s ({got['status_errors']} errors), "
              f"web CPU per request {web.used() * 1000 / answered:.2f} ms, "
              f"latency p50 {got['p50_us'] / 1000:.1f} ms, p99 {got['p99_us'] / 1000:.1f} ms")
    finally:
        for s in servers:
            s.proc.terminate()
            s.proc.wait(10)


if __name__ == "__main__":
    main()
