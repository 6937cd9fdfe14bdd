"""A replay inside the kept history is always complete (PROTOCOL.md section 3).

Thousands of events behind a cursor, on WebSocket, SSE and long polling,
with a live outbox far smaller than the replay (SB_OUTBOX_LIMIT=16) and
events still being published while the replay is read: every event arrives
once, in order, then live delivery goes on.
"""
from __future__ import annotations

import threading
import uuid

import pytest
import requests

from broadcast.bus import Outgoing
from broadcast.events import encode_cursor
from broadcast.redis_bus import RedisBus
from tests.support.clients import SseClient, WsClient, auth, token
from tests.support.procs import WebServer

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def prefix():
    return f"sbt{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="module", params=["redis", "cluster"])
def redis_url(request):
    """The one Redis, then a Redis Cluster: a long replay is as complete on either."""
    return REDIS_URL if request.param == "redis" else request.getfixturevalue("redis_cluster").url


@pytest.fixture(scope="module")
def server(tmp_path_factory, pg_url, prefix, redis_url):
    from tests.support.procs import Proc
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
           "SB_OUTBOX_LIMIT": "16", "CELERY_BROKER_URL": REDIS_URL}
    web = WebServer(env, tmp_path_factory.mktemp("replay"), "web-replay").start()
    yield web
    Proc.stop(web)


@pytest.fixture(scope="module")
def bus(prefix, redis_url):
    bus = RedisBus(redis_url, prefix)
    yield bus
    bus.close()


def fill(bus, topic: str, count: int) -> tuple[str, list[str]]:
    """`count` stored events; the cursor before them and their ids."""
    start = bus.latest(topic)
    ids: list[str] = []
    for base in range(0, count, 1000):
        ids += bus.publish_many([Outgoing(topic, "tick", {"n": n, "pad": "x" * 100})
                                 for n in range(base, min(count, base + 1000))])
    return start, ids


def publish_during(server, topic: str, count: int, start: int) -> threading.Thread:
    def run():
        session = requests.Session()
        for n in range(start, start + count):
            session.post(f"{server.url}/api/v1/broadcast", headers=auth("store", "service"),
                         json={"topic": topic, "event": "tick", "data": {"n": n}}, timeout=10)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("count", [5_000, 30_000])
def test_websocket_replays_every_event_then_goes_live(server, bus, count):
    topic = f"product:{uuid.uuid4().hex[:8]}"
    start, ids = fill(bus, topic, count)
    ws = WsClient(server.url, token("replayer"), timeout=30)
    racing = publish_during(server, topic, 100, count)
    ack = ws.subscribe(topic, since=start)
    assert ack["recovered"] is True
    got = [f["data"]["n"] for f in ws.events("tick", count + 100, timeout=60)]
    racing.join()
    assert got == list(range(count + 100))   # once each, in order
    ws.close()


def test_sse_replays_every_event_then_goes_live(server, bus):
    topic = f"product:{uuid.uuid4().hex[:8]}"
    start, ids = fill(bus, topic, 5_000)
    racing = publish_during(server, topic, 100, 5_000)
    sse = SseClient(server.url, token("replayer"), [topic], last_event_id=encode_cursor({topic: start}))
    got = [sse.until(lambda e: e["event"] == "tick", timeout=60)["frame"]["data"]["n"]
           for _ in range(5_100)]
    racing.join()
    assert got == list(range(5_100))
    sse.close()


def test_long_polling_pages_through_every_event(server, bus):
    topic = f"product:{uuid.uuid4().hex[:8]}"
    start, ids = fill(bus, topic, 5_000)
    cursor, got, polls = encode_cursor({topic: start}), [], 0
    while len(got) < 5_000:
        body = requests.get(f"{server.url}/poll", params={"topics": topic, "cursor": cursor,
                                                          "token": token("poller")}, timeout=30).json()
        assert body["reset"] == [] and body["events"], body
        got += [e["id"] for e in body["events"]]
        cursor, polls = body["cursor"], polls + 1
    assert got == ids and polls > 1
