"""What one publish costs Redis: events through RedisBus.publish_many, Redis's CPU per event.

    .venv/bin/python bench/bus_publish.py --count 50000 [--url redis://127.0.0.1:6379/0]
    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/bus_publish.py ...   # another tree

Publishes `--count` events over `--topics` topics in batches of `--batch` (what a
worker's notification batch does), and reads Redis's own CPU counters
(INFO cpu: used_cpu_user + used_cpu_sys, of every node on a cluster, replicas too) before
and after: the script's cost, whatever the client's. Run it alternated with
another tree to compare; the machine is shared, so compare ratios.
"""
from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.cluster import RedisCluster  # noqa: E402

from broadcast.bus import Outgoing  # noqa: E402
from broadcast.redis_bus import RedisBus  # noqa: E402


def redis_cpu(bus: RedisBus) -> float:
    if isinstance(bus.redis, RedisCluster):
        nodes = list(bus.redis.info("cpu", target_nodes=RedisCluster.ALL_NODES).values())
    else:
        nodes = [bus.redis.info("cpu")]
    return sum(float(n["used_cpu_user"]) + float(n["used_cpu_sys"]) for n in nodes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    bus = RedisBus(args.url, prefix)
    topics = [f"user:{i}" for i in range(args.topics)]
    data = {"title": "Your order shipped", "body": "x" * 120}
    cpu0, t0 = redis_cpu(bus), time.perf_counter()
    for start in range(0, args.count, args.batch):
        bus.publish_many([Outgoing(topics[i % len(topics)], "notification", data)
                          for i in range(start, min(args.count, start + args.batch))])
    elapsed, cpu = time.perf_counter() - t0, redis_cpu(bus) - cpu0
    print(f"{args.count} events in {elapsed:.2f}s: {args.count / elapsed:,.0f}/s; "
          f"Redis CPU {cpu * 1e6 / args.count:.1f} us/event")
    for key in bus.redis.scan_iter(match=prefix + "*", count=1000):
        bus.redis.delete(key)
    bus.close()


if __name__ == "__main__":
    main()
