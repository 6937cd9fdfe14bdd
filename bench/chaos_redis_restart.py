"""Chaos: many clients, steady publishing, and Redis restarted in the middle.

Two web processes on a Redis of the run's own (tests/support/redis_server.py)
and PostgreSQL; `--clients` WebSocket clients spread over both processes and
over `--topics` product topics; publishers POST events at `--rate` per second
to both processes (an answer other than 202 is a refused publish: the
publisher was told, nothing is lost by it). A third of the clients disconnect
just before the restart and come back after it with `since` (as the JS client
does). Redis is restarted once, without persistence or with AOF (`--aof`).

Every client counts, for its topic, the events published (202) after it
subscribed: each one received, lost with a word (after a `stream:reset` or a
`recovered: false` on that topic), lost silently, or received twice. The
contract: nothing silent and no duplicate; with AOF nothing lost at all.

    .venv/bin/python bench/chaos_redis_restart.py [--clients 300] [--topics 30] [--rate 100] [--aof]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
import websocket  # noqa: E402

from models.migrate import upgrade  # noqa: E402
from tests.support.clients import auth, token  # noqa: E402
from tests.support.procs import WebServer  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class Client:
    """One WebSocket client on one topic; reconnects with `since` when told to."""

    def __init__(self, url: str, topic: str, name: str) -> None:
        self.url, self.topic, self.name = url, topic, name
        self.received: list[int] = []        # seq of each event, as it came
        self.lost_from: float | None = None  # told: history lost (time.monotonic())
        self.cursor: str | None = None
        self.subscribed_at = 0.0
        self.ws: websocket.WebSocket | None = None
        self.thread: threading.Thread | None = None
        self.done = threading.Event()

    def connect(self) -> None:
        self.ws = websocket.create_connection(
            self.url.replace("http", "ws") + f"/ws?token={token(self.name)}", timeout=30)
        op = {"op": "subscribe", "topic": self.topic, "ref": "s"}
        if self.cursor:
            op["since"] = self.cursor
        self.ws.send(json.dumps(op))
        while True:
            frame = json.loads(self.ws.recv())
            if frame.get("event") == "ack" and frame.get("ref") == "s":
                break
        if not frame["ok"]:
            raise RuntimeError(f"{self.name}: subscribe refused: {frame}")
        if self.cursor and not frame["data"]["recovered"]:
            self.lost_from = time.monotonic()
        self.subscribed_at = self.subscribed_at or time.monotonic()
        self.thread = threading.Thread(target=self._read, args=(self.ws,), daemon=True)
        self.thread.start()

    def _read(self, ws: websocket.WebSocket) -> None:
        ws.settimeout(None)
        try:
            while True:
                text = ws.recv()
                if not text:
                    return
                frame = json.loads(text)
                if frame.get("event") == "stream:reset":
                    self.lost_from = time.monotonic()
                elif frame.get("event") == "tick":
                    self.cursor = frame["id"]
                    self.received.append(frame["data"]["seq"])
                elif frame.get("event") == "marker":
                    self.cursor = frame["id"]
                    self.done.set()
        except (websocket.WebSocketException, OSError, ValueError):
            return

    def disconnect(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.thread.join(10)


class Publisher:
    """POSTs `tick` events round robin over topics and web processes; records each 202."""

    def __init__(self, webs: list[WebServer], topics: list[str], rate: float) -> None:
        self.webs, self.topics, self.rate = webs, topics, rate
        self.accepted: dict[str, list[tuple[int, float]]] = {t: [] for t in topics}
        self.refused = 0
        self.stop = threading.Event()
        self.seq = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sessions = [requests.Session() for _ in self.webs]
        start = time.monotonic()
        while not self.stop.is_set():
            self.seq += 1
            topic = self.topics[self.seq % len(self.topics)]
            i = self.seq % len(self.webs)
            sent_at = time.monotonic()
            try:
                resp = sessions[i].post(f"{self.webs[i].url}/api/v1/broadcast",
                                        headers=auth("store", "service"), timeout=10,
                                        json={"topic": topic, "event": "tick", "data": {"seq": self.seq}})
                if resp.status_code == 202:
                    self.accepted[topic].append((self.seq, sent_at))
                else:
                    self.refused += 1
            except requests.RequestException:
                self.refused += 1
            # Paced to the rate: the next send's time, not a wait for a result.
            self.stop.wait(max(0.0, start + self.seq / self.rate - time.monotonic()))


def run(args: argparse.Namespace) -> dict:
    name = f"sb_chaos_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = f"postgresql://postgres@127.0.0.1:5432/{name}"
    upgrade(db)
    logs = Path(tempfile.mkdtemp(prefix="chaos-"))
    redis_server = RedisServer(logs / "redis", aof=args.aof).start()
    env = {"DATABASE_URL": db, "REDIS_URL": redis_server.url, "REDIS_PREFIX": "sb:",
           "SB_RATE_LIMIT_USER": "1000000/minute", "SB_RATE_LIMIT_ADDRESS": "1000000/minute"}
    webs = [WebServer(env, logs, f"web-{i}").start() for i in range(2)]
    try:
        topics = [f"product:chaos{i}" for i in range(args.topics)]
        clients = [Client(webs[i % 2].url, topics[i % len(topics)], f"c{i}") for i in range(args.clients)]
        for c in clients:
            c.connect()
        publisher = Publisher(webs, topics, args.rate)
        publisher.thread.start()
        time.sleep(args.before)   # steady state before the restart: the scenario's timeline
        leaving = clients[::3]
        for c in leaving:
            c.disconnect()
        restart_at = time.monotonic()
        redis_server.restart()
        restarted = time.monotonic() - restart_at
        for c in leaving:
            c.connect()
        time.sleep(args.after)    # the scenario's timeline after the restart
        publisher.stop.set()
        publisher.thread.join(15)
        # A marker per topic once publishing stopped: when a client has it, it has
        # everything that came before it on that topic.
        for i, t in enumerate(topics):
            while requests.post(f"{webs[i % 2].url}/api/v1/broadcast", headers=auth("store", "service"),
                                json={"topic": t, "event": "marker", "data": {}}, timeout=10).status_code != 202:
                time.sleep(0.1)   # Redis still coming back: retry the marker
        unfinished = sum(1 for c in clients if not c.done.wait(30))

        received = lost_told = lost_silent = duplicates = expected_total = 0
        silent_clients = 0
        for c in clients:
            expected = [(seq, at) for seq, at in publisher.accepted[c.topic] if at >= c.subscribed_at]
            got = set(c.received)
            duplicates += len(c.received) - len(got)
            missing = [(seq, at) for seq, at in expected if seq not in got]
            expected_total += len(expected)
            received += len(expected) - len(missing)
            # A loss is announced only for events published before the client was told.
            told = [m for m in missing if c.lost_from is not None and m[1] <= c.lost_from]
            lost_told += len(told)
            lost_silent += len(missing) - len(told)
            silent_clients += len(missing) > len(told)
        return {"aof": args.aof, "clients": args.clients, "topics": args.topics, "rate": args.rate,
                "published": sum(len(v) for v in publisher.accepted.values()),
                "refused_publishes": publisher.refused, "redis_restart_s": round(restarted, 2),
                "expected_deliveries": expected_total, "received": received,
                "lost_announced": lost_told, "lost_silent": lost_silent,
                "clients_with_silent_loss": silent_clients, "duplicates": duplicates,
                "clients_told_reset": sum(1 for c in clients if c.lost_from is not None),
                "clients_without_marker": unfinished}
    finally:
        for c in locals().get("clients", []):
            c.disconnect()
        for web in webs:
            web.stop()
        redis_server.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--topics", type=int, default=30)
    parser.add_argument("--rate", type=float, default=100.0, help="events published per second")
    parser.add_argument("--before", type=float, default=5.0, help="seconds of steady state before the restart")
    parser.add_argument("--after", type=float, default=8.0, help="seconds of publishing after it")
    parser.add_argument("--aof", action="store_true", help="Redis with appendonly yes (fsync always)")
    result = run(parser.parse_args())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
