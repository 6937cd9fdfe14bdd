"""CPU per rate-limit check, in process against Redis: permits leased in batches (as served)
against one round trip per check (leases of one permit, what the limiter did before).

    .venv/bin/python bench/ratelimit_cpu.py [--checks 20000] [--users 256]
"""
from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import redis
from limits import parse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api import ratelimit  # noqa: E402


def cpu_per_check(checks: int, users: int, most: int) -> float:
    ratelimit.LEASE_MOST = most
    limits = ratelimit.RedisLimits(redis.Redis.from_url("redis://127.0.0.1:6379/0"),
                                   f"rlbench{uuid.uuid4().hex[:6]}:")
    per_user, ceiling = parse("10000000/minute"), parse("10000000/minute")
    started = time.process_time()
    for i in range(checks):
        assert limits.hit([(per_user, f"user:{i % users}", ""), (ceiling, "ceiling:10.0.0.1", "")]) == 0
    return (time.process_time() - started) / checks * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checks", type=int, default=20000)
    ap.add_argument("--users", type=int, default=256)
    args = ap.parse_args()
    served = ratelimit.LEASE_MOST
    for label, most in (("one round trip per check", 1), ("leased", served)) * 2:
        print(f"{label}: {cpu_per_check(args.checks, args.users, most):.1f} us of CPU per check "
              f"({args.checks} checks, {args.users} users)")


if __name__ == "__main__":
    main()
