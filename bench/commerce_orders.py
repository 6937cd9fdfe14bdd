"""Order status updates broadcast per second, end to end, through two web processes.

    .venv/bin/python bench/commerce_orders.py [--orders 50] [--updates 20] [--threads 16]

The store's backend posts status changes (each `in_transit` with a new
location) to one web process; a WebSocket admin client on the other counts
the `order_tracking_update` events. Prints updates/s accepted and the rate
and completeness of what the admin received.
"""
from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from commerce_common import stack
from tests.support.clients import WsClient, auth, token


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=50)
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()
    limits = {"SB_RATE_LIMIT_ADDRESS": "10000000/minute", "SB_RATE_LIMIT_USER": "10000000/minute"}
    with stack(2, **limits) as (servers, _env):
        a, b = servers
        svc = auth("store", "service")
        for i in range(args.orders):
            requests.put(f"{a.url}/api/v1/orders/b{i}", json={"customer_id": f"c{i}", "status": "shipped"},
                         headers=svc, timeout=10).raise_for_status()
        ws = WsClient(b.url, token("bench-admin", "admin"))
        ws.subscribe("admin")
        total = args.orders * args.updates
        got = [0]
        done = threading.Event()
        first_last = [0.0, 0.0]

        def reader():
            while got[0] < total:
                try:
                    frame = ws.recv(timeout=30)
                except TimeoutError:
                    break
                if frame.get("event") == "order_tracking_update":
                    got[0] += 1
                    first_last[1] = time.perf_counter()
            done.set()

        threading.Thread(target=reader, daemon=True).start()
        local = threading.local()

        def run_order(i: int) -> None:
            if not hasattr(local, "s"):
                local.s = requests.Session()
            for n in range(args.updates):
                r = local.s.post(f"{a.url}/api/v1/orders/b{i}/status", headers=svc, timeout=30,
                                 json={"status": "in_transit", "location": {"address": f"stop {n}"}})
                assert r.status_code == 200, r.text

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(run_order, range(args.orders)))
        posted = time.perf_counter() - t0
        done.wait(60)
        received = (first_last[1] or time.perf_counter()) - t0
        print(f"{total} status updates posted in {posted:.2f}s: {total / posted:.0f} updates/s "
              f"(threads={args.threads}); admin received {got[0]}/{total} "
              f"({got[0] / received:.0f}/s end to end, {'complete' if got[0] == total else 'INCOMPLETE'})")
        ws.close()


if __name__ == "__main__":
    main()
