"""A blast of notifications through the whole pipeline in the distributed mode.

    .venv/bin/python bench/notifications_bulk.py [--count 10000] [--users 1000] [--workers 1]
                                                 [--concurrency 4] [--channel websocket|push]
                                                 [--cluster]

Starts gunicorn (web) and `--workers` Celery workers on the `notifications` queue against a
fresh PostgreSQL database and a Redis prefix of its own, then times the
`POST /api/v1/notifications/bulk` calls (10,000 a call, the API's most, four at once)
until every notification has been rendered, checked against preferences, sent on its
channel and has its `sent` delivery row. `websocket`: published on its user's topic, and
a WebSocket client of one user counts its events. `push`: each user has a web push
subscription at a local push service (tests/support/peers.py's, which checks the VAPID
token and the encoding of every message and forwards nothing, as a push service does
before it forwards) on this machine. Prints the CPU each part used, per notification.
Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on 127.0.0.1:6379.
`--cluster`: the bus on a Redis Cluster of three masters with a replica each, started for
the run (tests/support/redis_cluster.py); Celery's broker stays on 127.0.0.1:6379. The
Redis CPU figure is then every node's and the broker's together.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
import requests  # noqa: E402
import redis  # noqa: E402

from cpu import CpuMeter, children, pids_named  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from providers.webpush import generate_keys  # noqa: E402
from tests.support.clients import WsClient, auth, token  # noqa: E402
from tests.support.peers import WebPushPeer  # noqa: E402
from tests.support.procs import WebServer, Worker  # noqa: E402
from tests.support.redis_cluster import RedisCluster  # noqa: E402

PER_CALL = 10_000   # the bulk API's most per call

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--channel", choices=("websocket", "push"), default="websocket")
    ap.add_argument("--cluster", action="store_true")
    args = ap.parse_args()

    db = f"sb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    pg_url = f"postgresql://postgres@127.0.0.1:5432/{db}"
    prefix = f"sbb{uuid.uuid4().hex[:6]}:"
    env = {"DATABASE_URL": pg_url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
    cluster = None
    if args.cluster:
        cluster = RedisCluster(Path(tempfile.mkdtemp(prefix="sb-bench-cluster-"))).start()
        env.update(REDIS_URL=cluster.url, CELERY_BROKER_URL=REDIS_URL)
    push = None
    if args.channel == "push":
        private, public = generate_keys()
        push = WebPushPeer(public, decrypt=False).start()
        env.update(SB_VAPID_PRIVATE_KEY=private, SB_VAPID_PUBLIC_KEY=public)
    procs = []
    try:
        upgrade(pg_url)
        log_dir = Path(tempfile.mkdtemp(prefix="sb-bench-notif-"))
        web = WebServer(env, log_dir).start()
        procs.append(web)
        for i in range(args.workers):
            procs.append(Worker(env, log_dir, name=f"worker{i}", queues="notifications",
                                concurrency=args.concurrency).start())
        # Warm up: the worker's pool processes import the project and connect.
        warm = requests.post(f"{web.url}/api/v1/notifications/bulk", headers=auth("bench", "service"),
                             json={"notifications": [{"user_id": "warm", "type": "promotion_alert",
                                                      "data": {}, "channels": ["websocket"]}] * 8},
                             timeout=60)
        assert warm.status_code == 202, warm.text
        wait_sent(pg_url, "websocket", 8, 60)
        if push is not None:
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: subscribe(web, push, f"u{i}"), range(args.users)))

        watched = "u0"
        ws = WsClient(web.url, token(watched))
        items = [{"user_id": f"u{i % args.users}", "type": "promotion_alert",
                  "data": {"title": f"S{i}"}, "channels": [args.channel]}
                 for i in range(args.count)]
        bodies = [json.dumps({"notifications": items[i:i + PER_CALL]}, separators=(",", ":"))
                  for i in range(0, len(items), PER_CALL)]
        worker_pids = lambda: [c for w in procs[1:] for c in [w.pid, *children(w.pid)]]  # noqa: E731
        meters = {"web": CpuMeter(lambda: [web.pid, *children(web.pid)]), "workers": CpuMeter(worker_pids),
                  "postgresql": CpuMeter(lambda: pids_named("postgres")),
                  "redis": CpuMeter(lambda: pids_named("redis-server"))}
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda body: post(web, body), bodies))
        t_accepted = time.perf_counter() - t0
        assert statuses == [202] * len(bodies), statuses
        before = 8 if args.channel == "websocket" else 0
        wait_sent(pg_url, args.channel, before + args.count, 600)
        elapsed = time.perf_counter() - t0
        cpu = {name: round(m.used() * 1e6 / args.count) for name, m in meters.items()}
        received = {}
        if args.channel == "websocket":
            expected = sum(1 for i in range(args.count) if i % args.users == 0)
            received["ws_events_for_one_user"] = len(ws.events("notification", expected, timeout=30))
        else:
            received["push_messages_received"] = len(push.wait_for(lambda got: len(got) >= args.count, 60))
        ws.close()
        print(json.dumps({"notifications": args.count, "channel": args.channel, "users": args.users,
                          "redis": "cluster of 3 masters" if cluster else "one",
                          "workers": args.workers, "concurrency": args.concurrency,
                          "accepted_s": round(t_accepted, 3), "all_sent_s": round(elapsed, 3),
                          "per_second": round(args.count / elapsed), "cpu_us_per_notification": cpu,
                          **received}))
    finally:
        for p in reversed(procs):
            p.stop()
        if push is not None:
            push.stop()
        if cluster is not None:
            cluster.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)


def post(web, body: str) -> int:
    return requests.post(f"{web.url}/api/v1/notifications/bulk", data=body, timeout=300,
                         headers={**auth("bench", "service"), "Content-Type": "application/json"}).status_code


def subscribe(web, push: WebPushPeer, user: str) -> None:
    r = requests.post(f"{web.url}/api/v1/me/push-subscriptions", json=push.subscription(user), timeout=30,
                      headers={"Authorization": f"Bearer {token(user)}"})
    assert r.status_code == 201, r.text


def wait_sent(pg_url: str, channel: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(pg_url, autocommit=True) as conn:
        while True:
            sent = conn.execute("SELECT count(*) FROM notification_deliveries "
                                "WHERE channel = %s AND status = 'sent'", (channel,)).fetchone()[0]
            if sent >= n:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sent}/{n} sent after {timeout}s")
            time.sleep(0.05)  # sampling the end of a run; the benchmark's resolution


if __name__ == "__main__":
    main()
