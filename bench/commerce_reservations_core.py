"""Reservations per second on PostgreSQL without HTTP: what the hold path itself can do.

    .venv/bin/python bench/commerce_reservations_core.py [--processes 2] [--greenlets 24] [--holds 12000] [--stock 100000]

The companion of commerce_reservations.py (which goes through the web
processes): here each of `--processes` gevent processes calls
`actions.inventory.batch.hold_together` from `--greenlets` greenlets, with the real
PostgreSQL and the Redis bus (every hold still broadcasts its two events and
schedules its expiry), for one unit of one hot product each. By default the
stock outlasts the run, so the rate is holds made; with `--stock` below
`--holds` it sells out, and either way the check afterwards proves exactly
the units answered as held are held, by as many rows, never more than the
stock.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def child(url: str, prefix: str, holds: int, greenlets: int, start_at: float) -> None:
    """One process of holds; prints `held refused elapsed` when done."""
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from gevent.pool import Pool

    from actions.inventory import batch
    from actions.inventory.stock import InventoryError
    from services import Services
    from settings import Settings

    services = Services.build(Settings.of(database_url=url, redis_url="redis://127.0.0.1:6379/0",
                                       redis_prefix=prefix))
    counts = {"held": 0, "refused": 0}

    def one(i: int) -> None:
        try:
            batch.hold_together(services, product_id="core-hot", variant_id=None,
                                quantity=1, owner_id=f"buyer-{i % 256}",
                                customer_id=f"buyer-{i % 256}", ttl_seconds=900)
            counts["held"] += 1
        except InventoryError:
            counts["refused"] += 1

    gevent.sleep(max(0.0, start_at - time.time()))  # all processes start together
    t0 = time.perf_counter()
    Pool(greenlets).map(one, range(holds))
    elapsed = time.perf_counter() - t0
    gevent.sleep(0.3)  # the last expiry batch goes out before the process ends
    print(counts["held"], counts["refused"], elapsed, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--greenlets", type=int, default=24)
    ap.add_argument("--holds", type=int, default=12000, help="in all, split between the processes")
    ap.add_argument("--stock", type=int, default=100000)
    ap.add_argument("--child", nargs=4, metavar=("URL", "PREFIX", "HOLDS", "START_AT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        url, prefix, holds, start_at = args.child
        child(url, prefix, int(holds), args.greenlets, float(start_at))
        return
    import uuid

    import psycopg

    from tests.support.databases import fresh_pg_database
    with fresh_pg_database("sb_bench_core") as url:
        from actions.inventory.stock import LevelKey, set_stock
        from broadcast import use_bus
        from broadcast.bus import MemoryBus
        from models import make_engine, make_session_factory, session_scope
        from settings import normalise_database_url
        use_bus(MemoryBus())
        engine = make_engine(normalise_database_url(url))
        with session_scope(make_session_factory(engine)) as s:
            set_stock(s, LevelKey("core-hot"), args.stock)
        engine.dispose()
        prefix = f"sbcore{uuid.uuid4().hex[:6]}:"
        start_at = time.time() + 5  # imports and connections happen before the clock starts
        procs = [subprocess.Popen(
            [sys.executable, __file__, "--greenlets", str(args.greenlets), "--child",
             normalise_database_url(url), prefix, str(args.holds // args.processes), str(start_at)],
            stdout=subprocess.PIPE, text=True) for _ in range(args.processes)]
        got = []
        for p in procs:
            out, _ = p.communicate(timeout=600)
            held_, refused_, elapsed_ = out.split()
            got.append((int(held_), int(refused_), float(elapsed_)))
        held = sum(g[0] for g in got)
        refused = sum(g[1] for g in got)
        elapsed = max(g[2] for g in got)
        with psycopg.connect(url) as conn:
            on_hand, level_held = conn.execute(
                "SELECT on_hand, held FROM stock_levels WHERE product_id = 'core-hot'").fetchone()
            rows = conn.execute("SELECT count(*) FROM reservations WHERE product_id = 'core-hot' "
                                "AND status = 'held'").fetchone()[0]
        total = held + refused
        print(f"{total} holds in {elapsed:.2f}s: {total / elapsed:.0f} reservations/s ({held} held, "
              f"{refused} out_of_stock); {args.processes} processes x {args.greenlets} greenlets")
        ok = held == level_held == rows == min(args.stock, total) <= on_hand
        print(f"on_hand={on_hand} held={level_held} held rows={rows} held answers={held}: "
              f"{'ZERO OVERSELL' if ok else 'MISMATCH'}")


if __name__ == "__main__":
    main()
