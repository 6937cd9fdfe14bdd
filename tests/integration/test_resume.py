"""Resuming after a disconnect: no gap, no duplicate, and an explicit reset when history is gone."""
from __future__ import annotations

import threading
import uuid

import pytest
import requests

from broadcast.events import cursor_key
from tests.support.clients import SseClient, WsClient, auth, token
from tests.support.procs import WebServer


def publisher(server, topic, count, start=0):
    session = requests.Session()
    ids = []
    for i in range(start, start + count):
        resp = session.post(f"{server.url}/api/v1/broadcast", headers=auth("store", "service"),
                            json={"topic": topic, "event": "tick", "data": {"seq": i}}, timeout=10)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    return ids


@pytest.fixture
def two(procs, bus_env):
    return (procs.start(WebServer(bus_env, procs.log_dir, "web-a")),
            procs.start(WebServer(bus_env, procs.log_dir, "web-b")))


def test_ws_resume_with_since_while_events_keep_coming(two):
    a, b = two
    topic = f"product:{uuid.uuid4().hex[:8]}"
    ws = WsClient(a.url, token("resumer"))
    ws.subscribe(topic)
    publisher(b, topic, 20)
    seen = [f["data"]["seq"] for f in ws.events("tick", 20)]
    cursor = ws.frames[-1]["id"]
    ws.close()

    # Published while the client is away, and while it resubscribes.
    publisher(b, topic, 30, start=20)
    racing = threading.Thread(target=publisher, args=(b, topic, 50, 50))
    racing.start()
    ws = WsClient(a.url, token("resumer"))
    ack = ws.subscribe(topic, since=cursor)
    racing.join()
    assert ack["recovered"] is True
    frames = ws.events("tick", 80, timeout=20)
    seen += [f["data"]["seq"] for f in frames]
    assert seen == list(range(100))  # every event once, in order
    ids = [f["id"] for f in frames]
    assert len(set(ids)) == 80
    ws.close()


def test_ws_ack_comes_before_the_replay_and_cursor_is_never_null(two):
    a, b = two
    topic = f"product:{uuid.uuid4().hex[:8]}"
    ws = WsClient(a.url, token("ordering"))
    ack = ws.subscribe(topic)
    assert ack["recovered"] is True and cursor_key(ack["cursor"]) == (0, 0)  # "before the first"
    ids = publisher(b, topic, 3)
    ws.events("tick", 3)
    ws.close()
    ws = WsClient(a.url, token("ordering"))
    ws.send({"op": "subscribe", "topic": topic, "since": ack["cursor"], "ref": "s"})
    ack = ws.until(lambda f: f.get("event") in ("ack", "tick"))  # presence may come first
    assert ack["event"] == "ack" and ack["data"] == {"recovered": True, "cursor": ids[-1]}
    assert [f["id"] for f in ws.events("tick", 3)] == ids
    ws.close()


def test_cursor_older_than_history_is_refused_not_replayed_in_part(procs, bus_env):
    env = {**bus_env, "SB_HISTORY_MIN_EVENTS": "5", "SB_HISTORY_MIN_SECONDS": "0"}
    a = procs.start(WebServer(env, procs.log_dir, "web-short-history"))
    topic = f"product:{uuid.uuid4().hex[:8]}"
    first = publisher(a, topic, 1)[0]
    later = publisher(a, topic, 140, start=1)
    ws = WsClient(a.url, token("late"))
    ack = ws.subscribe(topic, since=first)
    assert ack == {"recovered": False, "cursor": later[-1]}
    new = publisher(a, topic, 1, start=200)
    frame = ws.until(lambda f: f.get("event") == "tick")
    assert frame["id"] == new[0]  # nothing partial came first: live goes on from the cursor
    ws.close()

    import base64
    import json
    stale = base64.urlsafe_b64encode(json.dumps({topic: first}).encode()).decode().rstrip("=")
    sse = SseClient(a.url, token("late"), [topic], last_event_id=stale)
    reset = sse.next()
    assert reset["event"] == "stream:reset"
    assert reset["frame"]["data"] == {"topic": topic, "cursor": new[0]}
    assert "id" in reset  # the browser's Last-Event-ID moves to the reset point
    sse.close()


def test_sse_resumes_every_topic_from_last_event_id(two):
    a, b = two
    t1, t2 = (f"product:{uuid.uuid4().hex[:8]}" for _ in range(2))
    tok = token("sse-resumer")
    sse = SseClient(a.url, tok, [t1, t2])
    publisher(b, t1, 2)
    publisher(b, t2, 2, start=100)
    got = [sse.until(lambda e: e.get("event") == "tick")["frame"]["data"]["seq"] for _ in range(4)]
    assert sorted(got) == [0, 1, 100, 101]
    last = sse.last_id
    sse.close()

    publisher(b, t1, 3, start=2)
    publisher(b, t2, 3, start=102)
    sse = SseClient(b.url, tok, [t1, t2], last_event_id=last)
    resumed = []
    while len(resumed) < 6:
        item = sse.until(lambda e: e.get("event") == "tick")
        resumed.append((item["frame"]["topic"], item["frame"]["data"]["seq"]))
    assert [s for t, s in resumed if t == t1] == [2, 3, 4]
    assert [s for t, s in resumed if t == t2] == [102, 103, 104]
    with pytest.raises(TimeoutError):
        sse.until(lambda e: e.get("event") == "tick", timeout=1.5)  # nothing twice
    sse.close()


def test_poll_waits_for_the_next_event_and_hands_back_a_cursor(two):
    a, b = two
    topic = f"product:{uuid.uuid4().hex[:8]}"
    tok = token("poller")
    first = requests.get(f"{a.url}/poll", params={"topics": topic, "token": tok}, timeout=10).json()
    result = {}

    def long_poll():
        result["body"] = requests.get(f"{a.url}/poll", params={
            "topics": topic, "token": tok, "cursor": first["cursor"]}, timeout=40).json()
    waiter = threading.Thread(target=long_poll)
    waiter.start()
    ids = publisher(b, topic, 1)
    waiter.join(30)
    assert [e["id"] for e in result["body"]["events"]] == ids
    publisher(b, topic, 2, start=1)
    body = requests.get(f"{a.url}/poll", params={
        "topics": topic, "token": tok, "cursor": result["body"]["cursor"]}, timeout=40).json()
    assert [e["data"]["seq"] for e in body["events"]] == [1, 2]
