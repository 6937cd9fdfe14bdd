"""Reservations per second on PostgreSQL through two web processes, with zero oversell.

    .venv/bin/python bench/commerce_reservations.py [--seconds 10] [--connections 48] [--stock 2000]

Every request holds 1 unit of one hot product (the worst case: every hold
wants the same stock row), from 256 customers, sent by wrk (Debian package
`wrk`; a C load generator, so the client takes little of the 2 cores) over
`--connections` keep-alive connections split between the two web processes.
The stock is smaller than what the run asks for, so it runs out: the rate
counts every answered hold (201 held, 409 out_of_stock), and the check
afterwards proves that exactly the stock is held, by as many reservation
rows, never more. Also prints the server CPU per hold (web processes and
PostgreSQL, from /proc) and the latency wrk saw.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import requests

from commerce_common import stack
from tests.support.clients import auth, token

HERE = Path(__file__).resolve().parent


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=48)
    ap.add_argument("--stock", type=int, default=2000)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    # The per-address HTTP limit would refuse a load test from one host.
    with stack(2, SB_RATE_LIMIT_ADDRESS="10000000/minute", SB_RATE_LIMIT_USER="10000000/minute") as (servers, env):
        pid = "bench-hot"
        requests.put(f"{servers[0].url}/api/v1/products/{pid}/stock", json={"quantity": args.stock},
                     headers=auth("store", "service"), timeout=10).raise_for_status()
        tokens = Path(tempfile.mkstemp(prefix="sb-tokens-")[1])
        tokens.write_text("\n".join(token(f"buyer-{i}", "customer", ttl=3600) for i in range(256)))
        # Each buyer's user row exists before the clock starts, as for a returning customer.
        for i in range(256):
            requests.get(f"{servers[i % 2].url}/api/v1/products/{pid}/stock",
                         headers=auth(f"buyer-{i}", "customer"), timeout=10).raise_for_status()
        web = [c for s in servers for c in children(s.pid)]
        pg = postgres_pids()
        web0, pg0 = cpu_seconds(web), cpu_seconds(pg)
        runs = [subprocess.Popen(
            ["wrk", "-t1", f"-c{args.connections // 2}", f"-d{args.seconds}s", "--timeout", "30s",
             "-s", str(HERE / "reserve.lua"), s.url, "--", str(tokens), pid],
            stdout=subprocess.PIPE, text=True) for s in servers]
        outs = [r.communicate()[0] for r in runs]
        web_cpu, pg_cpu = cpu_seconds(web) - web0, cpu_seconds(pg) - pg0
        tokens.unlink()
        stats = [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", o.split("WRK", 1)[1]))
                 for o in outs]
        total = sum(s["requests"] for s in stats)
        import psycopg
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            on_hand, held = conn.execute(
                "SELECT on_hand, held FROM stock_levels WHERE product_id = %s", (pid,)).fetchone()
            rows = conn.execute("SELECT coalesce(sum(quantity), 0) FROM reservations "
                                "WHERE product_id = %s AND status = 'held'", (pid,)).fetchone()[0]
        refused = sum(s["status_errors"] for s in stats)
        print(f"{total} holds answered in {args.seconds}s: {total / args.seconds:.0f} reservations/s "
              f"({total - refused} held, {refused} refused (409), "
              f"{sum(s['socket_errors'] for s in stats)} socket errors); "
              f"{args.connections} connections, 2 web processes")
        print(f"latency p50 {max(s['p50_us'] for s in stats) / 1000:.1f} ms, "
              f"p99 {max(s['p99_us'] for s in stats) / 1000:.1f} ms (worse of the two processes)")
        print(f"server CPU per answered hold: web {web_cpu * 1000 / total:.2f} ms, "
              f"PostgreSQL {pg_cpu * 1000 / total:.2f} ms")
        # wrk does not count the requests still in flight when it stops (the
        # server may have held for them): held can exceed the 201s counted.
        sold_out = refused == 0 or held == on_hand
        ok = held == rows <= on_hand and held >= total - refused and sold_out
        print(f"on_hand={on_hand} held={held} held rows={rows} 201s counted={total - refused}: "
              f"{'ZERO OVERSELL' if ok else 'MISMATCH'}")


if __name__ == "__main__":
    main()
