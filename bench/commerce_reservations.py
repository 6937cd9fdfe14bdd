"""Reservations per second on PostgreSQL through two web processes, with zero oversell.

    .venv/bin/python bench/commerce_reservations.py [--requests 4000] [--threads 64] [--stock 2000]

Every request holds 1 unit of one hot product (the worst case: every hold
takes the same row lock). Prints the rate of answered holds (201 or 409),
then checks on PostgreSQL that exactly `min(stock, requests)` units are held
and the stock never went negative.
"""
from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from commerce_common import stack
from tests.support.clients import auth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--stock", type=int, default=2000)
    args = ap.parse_args()
    # The per-address HTTP limit would refuse a load test from one host.
    with stack(2, SB_RATE_LIMIT_ADDRESS="10000000/minute", SB_RATE_LIMIT_USER="10000000/minute") as (servers, env):
        pid = "bench-hot"
        requests.put(f"{servers[0].url}/api/v1/products/{pid}/stock", json={"quantity": args.stock},
                     headers=auth("store", "service"), timeout=10).raise_for_status()
        local = threading.local()
        headers = [auth(f"buyer-{i}", "customer") for i in range(256)]

        def one(i: int) -> int:
            if not hasattr(local, "s"):
                local.s = requests.Session()
            r = local.s.post(f"{servers[i % len(servers)].url}/api/v1/reservations",
                             json={"product_id": pid, "quantity": 1}, headers=headers[i % 256],
                             timeout=60)
            if r.status_code not in (201, 409):
                print("unexpected", r.status_code, r.text[:200])
            return r.status_code

        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(one, range(min(200, args.requests))))  # warm up connections
            t0 = time.perf_counter()
            codes = list(pool.map(one, range(args.requests)))
            elapsed = time.perf_counter() - t0
        import psycopg
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            on_hand, held = conn.execute(
                "SELECT on_hand, held FROM stock_levels WHERE product_id = %s", (pid,)).fetchone()
            rows = conn.execute("SELECT coalesce(sum(quantity), 0) FROM reservations "
                                "WHERE product_id = %s AND status = 'held'", (pid,)).fetchone()[0]
        ok = codes.count(201)
        warm = min(200, args.requests)
        expected = min(args.stock, args.requests + warm)
        print(f"{args.requests} holds in {elapsed:.2f}s: {args.requests / elapsed:.0f} reservations/s "
              f"({ok} held, {codes.count(409)} out_of_stock, other {len(codes) - ok - codes.count(409)}); "
              f"threads={args.threads}, 2 web processes")
        print(f"on_hand={on_hand} held={held} held rows={rows} expected held={expected}: "
              f"{'ZERO OVERSELL' if held == rows == expected <= on_hand else 'MISMATCH'}")


if __name__ == "__main__":
    main()
