"""Redis restarts and outages, on a Redis of the test's own (tests/support/redis_server.py).

PROTOCOL.md section 3: a cursor belongs to an epoch of its topic's history;
when Redis restarts without persistence the history is gone, and a cursor
from before is answered `recovered: false` (WebSocket), `stream:reset`
(SSE) or `reset: [...]` (poll), never with a silent hole; connected clients
are told as well. With AOF the restart loses nothing and the cursor resumes.
While Redis is down a publish is 503 with Retry-After and /readyz names
Redis; web and worker processes recover by themselves.
"""
from __future__ import annotations

import time
import uuid

import pytest
import requests

from broadcast.events import encode_cursor
from tests.support.clients import SseClient, WsClient, auth, token
from tests.support.procs import WebServer, Worker
from tests.support.redis_server import RedisServer


@pytest.fixture(params=[False, True], ids=["no-persistence", "aof"])
def redis_server(request, tmp_path):
    server = RedisServer(tmp_path / "redis", aof=request.param).start()
    yield server
    server.stop()


@pytest.fixture
def env(redis_server, pg_url):
    return {"DATABASE_URL": pg_url, "REDIS_URL": redis_server.url, "REDIS_PREFIX": "sb:"}


def publish(web, topic, seq, deadline_s: float = 30.0) -> str:
    """Publish once Redis answers again (503 until then: a dependency outage)."""
    deadline = time.monotonic() + deadline_s
    while True:
        resp = requests.post(f"{web.url}/api/v1/broadcast", headers=auth("store", "service"),
                             json={"topic": topic, "event": "tick", "data": {"seq": seq}}, timeout=10)
        if resp.status_code == 202:
            return resp.json()["id"]
        assert resp.status_code == 503, resp.text
        assert time.monotonic() < deadline, "the web process did not recover"
        time.sleep(0.1)  # a retry loop against an outage: there is no event to wait on


def test_a_cursor_from_before_a_restart_resumes_only_if_the_history_survived(procs, env, redis_server):
    web = procs.start(WebServer(env, procs.log_dir))
    topic = f"product:{uuid.uuid4().hex[:8]}"
    ws = WsClient(web.url, token("resumer"))
    ws.subscribe(topic)
    c1 = publish(web, topic, 1)
    assert ws.events("tick", 1)[0]["id"] == c1
    ws.close()
    later = [publish(web, topic, seq) for seq in (2, 3, 4)]
    redis_server.restart()
    later.append(publish(web, topic, 5))
    stream_cursor = encode_cursor({topic: c1})

    ws = WsClient(web.url, token("resumer"))
    ack = ws.subscribe(topic, since=c1)
    sse = SseClient(web.url, token("resumer"), [topic], last_event_id=stream_cursor)
    polled = requests.get(f"{web.url}/poll", params={"topics": topic, "cursor": stream_cursor,
                                                      "token": token("resumer")}, timeout=30).json()
    if redis_server.aof:
        assert ack == {"recovered": True, "cursor": later[-1]}
        assert [f["id"] for f in ws.events("tick", 4)] == later
        assert [sse.until(lambda e: e["event"] == "tick")["frame"]["id"] for _ in range(4)] == later
        assert [e["id"] for e in polled["events"]] == later and polled["reset"] == []
    else:
        assert ack == {"recovered": False, "cursor": later[-1]}
        first = sse.next()
        assert first["event"] == "stream:reset"
        assert first["frame"]["data"] == {"topic": topic, "cursor": later[-1]}
        assert polled["events"] == [] and polled["reset"] == [topic]
        # live delivery goes on from there, on every transport
        c6 = publish(web, topic, 6)
        assert [f["id"] for f in ws.events("tick", 1)] == [c6]
        assert sse.until(lambda e: e["event"] == "tick")["frame"]["id"] == c6
    ws.close()
    sse.close()


def test_connected_clients_are_told_when_a_restart_lost_the_history(procs, env, redis_server):
    web = procs.start(WebServer(env, procs.log_dir))
    topic = f"product:{uuid.uuid4().hex[:8]}"
    ws = WsClient(web.url, token("stays"))
    ws.subscribe(topic)
    sse = SseClient(web.url, token("stays"), [topic])
    c1 = publish(web, topic, 1)
    assert ws.events("tick", 1)[0]["id"] == c1
    assert sse.until(lambda e: e["event"] == "tick")["frame"]["id"] == c1
    redis_server.restart()
    c2 = publish(web, topic, 2)
    frames = [ws.until(lambda f: f.get("event") in ("tick", "stream:reset"), timeout=30)]
    if not redis_server.aof:
        assert frames[0]["event"] == "stream:reset" and frames[0]["topic"] == topic
        frames.append(ws.until(lambda f: f.get("event") == "tick", timeout=30))
        assert sse.until(lambda e: e["event"] in ("tick", "stream:reset"), timeout=30)["event"] \
            == "stream:reset"
    assert frames[-1]["event"] == "tick" and frames[-1]["id"] == c2
    assert sse.until(lambda e: e["event"] == "tick", timeout=30)["frame"]["id"] == c2
    ws.close()
    sse.close()


def test_an_outage_is_503_with_retry_after_and_both_processes_recover(procs, tmp_path, pg_url):
    redis_server = RedisServer(tmp_path / "outage").start()
    try:
        env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_server.url, "REDIS_PREFIX": "sb:"}
        web = procs.start(WebServer(env, procs.log_dir))
        procs.start(Worker(env, procs.log_dir, queues="notifications", concurrency=1))
        user = f"u-{uuid.uuid4().hex[:6]}"
        ws = WsClient(web.url, token(user))
        redis_server.stop()

        resp = requests.post(f"{web.url}/api/v1/broadcast", headers=auth("store", "service"),
                             json={"topic": "admin", "event": "x"}, timeout=30)
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "unavailable" and int(resp.headers["Retry-After"]) > 0
        ready = requests.get(f"{web.url}/readyz", timeout=30)
        assert ready.status_code == 503 and "redis" in ready.json()["failed"]

        redis_server.start()
        publish(web, "admin", 0)   # the web process recovered
        deadline = time.monotonic() + 30
        while requests.get(f"{web.url}/readyz", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, requests.get(f"{web.url}/readyz", timeout=30).text
            time.sleep(0.2)  # polling a readiness probe: nothing to block on
        # The worker recovered too: a notification goes through it to the
        # WebSocket that stayed connected across the outage.
        sent = requests.post(f"{web.url}/api/v1/notifications", headers=auth("store", "service"),
                             json={"user_id": user, "type": "promotion_alert",
                                   "data": {"title": "back"}, "channels": ["websocket"]}, timeout=10)
        assert sent.status_code == 202, sent.text
        note = ws.until(lambda f: f.get("event") == "notification", timeout=60)
        assert note["data"]["id"] == sent.json()["id"]
        ws.close()
    finally:
        redis_server.stop()
