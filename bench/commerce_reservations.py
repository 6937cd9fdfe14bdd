"""Reservations per second on PostgreSQL through two web processes, with zero oversell.

    .venv/bin/python bench/commerce_reservations.py [--seconds 10] [--connections 48] [--last 2000] [--products 1]

Every request holds 1 unit of one hot product (the worst case: every hold
wants the same stock row; `--products N` spreads the throughput phase over N
products instead), from 256 customers, sent by wrk (Debian package
`wrk`; a C load generator, so the client takes little of the 2 cores) over
`--connections` keep-alive connections split between the two web processes.

Two phases. Throughput: the product has more stock than the run can take, so
every answer is a hold made (201); the rate is the 201s per second, and the
check afterwards proves each made hold is in `held` and has its row. Sell-out:
another product has `--last` units and the same load runs until it is long
sold out; the check proves exactly that stock is held, by as many rows, and
the rest were refused (409), never more. Also prints the server CPU per hold
(web processes, PostgreSQL, Redis, from /proc) and the latency wrk saw.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from commerce_common import stack
from cpu import CpuMeter, children, pids_named
from tests.support.clients import auth, token

HERE = Path(__file__).resolve().parent


def wrk(servers, tokens: Path, product_ids: str, seconds: int, connections: int) -> dict[str, int]:
    """Runs wrk against every server at once; the summed counts."""
    runs = [subprocess.Popen(
        ["wrk", "-t1", f"-c{connections // len(servers)}", f"-d{seconds}s", "--timeout", "30s",
         "-s", str(HERE / "reserve.lua"), s.url, "--", str(tokens), product_ids],
        stdout=subprocess.PIPE, text=True) for s in servers]
    stats = [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", r.communicate()[0].split("WRK", 1)[1]))
             for r in runs]
    total = {k: sum(s[k] for s in stats) for k in ("requests", "status_errors", "socket_errors")}
    total |= {k: max(s[k] for s in stats) for k in ("p50_us", "p99_us")}
    return total


def settled_figures(url: str, product_ids: list[str]) -> tuple[int, int, int]:
    """(on_hand, held, units in held rows) summed over the products, read in one snapshot
    once they stop changing: wrk does not wait for the requests in flight when it stops,
    the server still answers them."""
    import psycopg
    last = None
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100):
            now = conn.execute(
                "SELECT sum(on_hand), sum(held), (SELECT coalesce(sum(quantity), 0) FROM reservations "
                "WHERE product_id = ANY(%s) AND status = 'held') FROM stock_levels "
                "WHERE product_id = ANY(%s)", (product_ids, product_ids)).fetchone()
            if now == last:
                return now
            last = now
            time.sleep(0.2)  # the bench's own pacing, not a test's wait
    raise SystemExit(f"{product_ids}: figures still changing")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=48)
    ap.add_argument("--last", type=int, default=2000, help="units for the sell-out phase")
    ap.add_argument("--products", type=int, default=1, help="products the throughput phase spreads over")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    # The per-address HTTP limit would refuse a load test from one host.
    with stack(2, SB_RATE_LIMIT_ADDRESS="10000000/minute", SB_RATE_LIMIT_USER="10000000/minute") as (servers, env):
        hot = [f"bench-hot-{i}" for i in range(args.products)]
        last = "bench-last"
        for pid, units in [(p, 100_000_000) for p in hot] + [(last, args.last)]:
            requests.put(f"{servers[0].url}/api/v1/products/{pid}/stock", json={"quantity": units},
                         headers=auth("store", "service"), timeout=10).raise_for_status()
        tokens = Path(tempfile.mkstemp(prefix="sb-tokens-")[1])
        tokens.write_text("\n".join(token(f"buyer-{i}", "customer", ttl=3600) for i in range(256)))
        # Each buyer's user row exists before the clock starts, as for a returning customer.
        for i in range(256):
            requests.get(f"{servers[i % 2].url}/api/v1/products/{last}/stock",
                         headers=auth(f"buyer-{i}", "customer"), timeout=10).raise_for_status()
        web_pids = [c for s in servers for c in children(s.pid)]
        web, pg, rd = (CpuMeter(lambda: web_pids), CpuMeter(lambda: pids_named("postgres")),
                       CpuMeter(lambda: pids_named("redis-server")))
        got = wrk(servers, tokens, ",".join(hot), args.seconds, args.connections)
        cpu = [m.used() * 1000 for m in (web, pg, rd)]
        made = got["requests"] - got["status_errors"]
        on_hand, held, rows = settled_figures(env["DATABASE_URL"], hot)
        print(f"throughput: {made} holds made in {args.seconds}s: {made / args.seconds:.0f} "
              f"reservations/s ({got['status_errors']} refused, {got['socket_errors']} socket "
              f"errors); {args.connections} connections, 2 web processes, "
              f"{args.products} product{'s' if args.products > 1 else ''}")
        print(f"  latency p50 {got['p50_us'] / 1000:.1f} ms, p99 {got['p99_us'] / 1000:.1f} ms "
              f"(worse of the two processes)")
        print(f"  server CPU per hold: web {cpu[0] / made:.2f} ms, PostgreSQL {cpu[1] / made:.2f} ms, "
              f"Redis {cpu[2] / made:.2f} ms")
        # Held may exceed the 201s counted by the holds still in flight when wrk stopped.
        ok = got["status_errors"] == 0 and held == rows and made <= held <= made + args.connections
        print(f"  held={held} held rows={rows} 201s counted={made}: {'CONSISTENT' if ok else 'MISMATCH'}")

        got = wrk(servers, tokens, last, max(3, args.seconds // 3), args.connections)
        made = got["requests"] - got["status_errors"]
        on_hand, held, rows = settled_figures(env["DATABASE_URL"], [last])
        tokens.unlink()
        ok = on_hand == held == rows == args.last and made <= held and got["status_errors"] > 0
        print(f"sell-out: {args.last} units, {got['requests']} answers ({made} held, "
              f"{got['status_errors']} refused): on_hand={on_hand} held={held} held rows={rows}: "
              f"{'ZERO OVERSELL' if ok else 'MISMATCH'}")


if __name__ == "__main__":
    main()
