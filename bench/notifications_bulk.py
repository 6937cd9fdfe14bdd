"""10,000 notifications through the whole pipeline in the distributed mode.

    .venv/bin/python bench/notifications_bulk.py [--count 10000] [--concurrency 4] [--users 1000]

Starts gunicorn (web) and a Celery worker on the `notifications` queue against a
fresh PostgreSQL database and a Redis prefix of its own, then times one
`POST /api/v1/notifications/bulk` until every notification has been rendered,
checked against preferences, published on its user's WebSocket topic and has
its `sent` delivery row. A WebSocket client of one user counts its events.
Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on 127.0.0.1:6379.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
import requests  # noqa: E402
import redis  # noqa: E402

from models.migrate import upgrade  # noqa: E402
from tests.support.clients import WsClient, auth, token  # noqa: E402
from tests.support.procs import WebServer, Worker  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    db = f"sb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    pg_url = f"postgresql://postgres@127.0.0.1:5432/{db}"
    prefix = f"sbb{uuid.uuid4().hex[:6]}:"
    env = {"DATABASE_URL": pg_url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
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
        wait_sent(pg_url, 8, 60)

        watched = "u0"
        ws = WsClient(web.url, token(watched))
        items = [{"user_id": f"u{i % args.users}", "type": "promotion_alert",
                  "data": {"title": f"S{i}"}, "channels": ["websocket"]}
                 for i in range(args.count)]
        body = json.dumps({"notifications": items}, separators=(",", ":"))
        t0 = time.perf_counter()
        resp = requests.post(f"{web.url}/api/v1/notifications/bulk", data=body, timeout=120,
                             headers={**auth("bench", "service"), "Content-Type": "application/json"})
        t_accepted = time.perf_counter() - t0
        assert resp.status_code == 202, resp.text[:500]
        wait_sent(pg_url, 8 + args.count, 300)
        elapsed = time.perf_counter() - t0
        expected = sum(1 for i in range(args.count) if i % args.users == 0)
        got = ws.events("notification", expected, timeout=30)
        ws.close()
        print(json.dumps({"notifications": args.count, "users": args.users,
                          "workers": args.workers, "concurrency": args.concurrency,
                          "accepted_s": round(t_accepted, 3), "all_sent_s": round(elapsed, 3),
                          "per_second": round(args.count / elapsed),
                          "ws_events_for_one_user": len(got)}))
    finally:
        for p in reversed(procs):
            p.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)


def wait_sent(pg_url: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(pg_url, autocommit=True) as conn:
        while True:
            sent = conn.execute("SELECT count(*) FROM notification_deliveries "
                                "WHERE channel = 'websocket' AND status = 'sent'").fetchone()[0]
            if sent >= n:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sent}/{n} sent after {timeout}s")
            time.sleep(0.02)  # sampling the end of a run; the benchmark's resolution


if __name__ == "__main__":
    main()
