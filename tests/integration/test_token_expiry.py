"""A real-time connection lives no longer than its token (PROTOCOL.md section 2).

At `exp` a WebSocket is closed with 4001 and SSE and long-poll responses end;
no event published after `exp` reaches the connection. `{"op": "refresh"}`
with a token of the same user and role extends a WebSocket in place.
"""
from __future__ import annotations

import threading
import time
import uuid

import jwt
import pytest
import requests
import websocket

from settings import DEV_JWT_SECRET
from tests.support.clients import SseClient, WsClient, auth, token
from tests.support.procs import web_server


@pytest.fixture(scope="module")
def server(tmp_path_factory, pg_url):
    with web_server(pg_url, tmp_path_factory.mktemp("expiry"), "web-expiry") as web:
        yield web


def exp_of(tok: str) -> float:
    return jwt.decode(tok, options={"verify_signature": False})["exp"]


class Ticker:
    """Publishes to a topic every 50 ms until stopped."""

    def __init__(self, server, topic):
        self.server, self.topic, self.stop_flag = server, topic, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        session = requests.Session()
        n = 0
        while not self.stop_flag.is_set():
            session.post(f"{self.server.url}/api/v1/broadcast", headers=auth("store", "service"),
                         json={"topic": self.topic, "event": "tick", "data": {"n": n}}, timeout=10)
            n += 1
            self.stop_flag.wait(0.05)   # the publishing rate, not a wait for a result

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)


def test_a_websocket_is_closed_with_4001_at_exp_and_gets_nothing_after(server):
    topic = f"product:{uuid.uuid4().hex[:8]}"
    tok = token("expiring", ttl=5)
    ws = WsClient(server.url, tok)
    ws.subscribe(topic)
    ticker = Ticker(server, topic)
    ticks = []
    try:
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:
                frame = ws.recv(timeout=10)
                if frame.get("event") == "tick":
                    ticks.append(frame)
    finally:
        ticker.stop()
    assert ticks, "events flowed before exp"
    assert max(f["ts"] for f in ticks) <= exp_of(tok) * 1000
    ws.close()


def _close_code(tok: str, server) -> tuple[int, float]:
    """Open a WebSocket, read until the server closes; (close code, when)."""
    sock = websocket.create_connection(server.url.replace("http", "ws") + f"/ws?token={tok}", timeout=15)
    while True:
        opcode, data = sock.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big"), time.time()


def test_the_close_code_is_4001_token_expired(server):
    tok = token("expiring-2", ttl=5)
    code, when = _close_code(tok, server)
    assert code == 4001
    assert exp_of(tok) <= when < exp_of(tok) + 2


def test_refresh_extends_a_websocket_in_place(server):
    topic = f"product:{uuid.uuid4().hex[:8]}"
    short = token("refresher", ttl=5)
    ws = WsClient(server.url, short)
    ws.subscribe(topic)
    longer = token("refresher", ttl=600)
    ack = ws.request({"op": "refresh", "token": longer})
    assert ack["ok"] and ack["data"] == {"exp": int(exp_of(longer))}
    # Past the first token's exp the connection still delivers.
    while time.time() < exp_of(short) + 0.5:
        assert ws.request({"op": "ping"})["ok"]
        time.sleep(0.2)  # letting time pass is what this test is about
    requests.post(f"{server.url}/api/v1/broadcast", headers=auth("store", "service"),
                  json={"topic": topic, "event": "tick", "data": {}}, timeout=10)
    assert ws.events("tick", 1)[0]["topic"] == topic
    ws.close()


@pytest.mark.parametrize("other,code", [
    (lambda: token("someone-else", ttl=600), "token_mismatch"),
    (lambda: token("refresher-2", "admin", ttl=600), "token_mismatch"),
    (lambda: jwt.encode({"sub": "refresher-2", "role": "customer", "exp": int(time.time()) - 5},
                        DEV_JWT_SECRET), "token_expired"),
    (lambda: token("refresher-2", secret="wrong-secret", ttl=600), "invalid_token"),
])
def test_a_refresh_for_another_user_role_or_a_bad_token_is_refused(server, other, code):
    ws = WsClient(server.url, token("refresher-2", ttl=600))
    ack = ws.request({"op": "refresh", "token": other()})
    assert ack["ok"] is False and ack["error"]["code"] == code
    assert ws.request({"op": "ping"})["ok"]
    ws.close()


def test_an_sse_stream_ends_at_exp(server):
    topic = f"product:{uuid.uuid4().hex[:8]}"
    tok = token("sse-expiring", ttl=5)
    sse = SseClient(server.url, tok, [topic])
    ticker = Ticker(server, topic)
    ticks = []
    try:
        with pytest.raises(ConnectionError):
            while True:
                item = sse.next(timeout=10)
                if item["event"] == "tick":
                    ticks.append(item["frame"])
    finally:
        ticker.stop()
        sse.close()
    assert ticks and max(f["ts"] for f in ticks) <= exp_of(tok) * 1000
    assert time.time() < exp_of(tok) + 3


def test_a_long_poll_ends_at_exp(server):
    topic = f"product:{uuid.uuid4().hex[:8]}"
    tok = token("poll-expiring", ttl=5)
    first = requests.get(f"{server.url}/poll", params={"topics": topic, "token": tok}, timeout=10).json()
    started = time.time()
    body = requests.get(f"{server.url}/poll", params={"topics": topic, "cursor": first["cursor"],
                                                      "token": tok}, timeout=30).json()
    ended = time.time()
    assert body["events"] == []
    assert ended < exp_of(tok) + 2 and ended - started < 10   # not the 25 s of a long poll
    again = requests.get(f"{server.url}/poll", params={"topics": topic, "cursor": body["cursor"],
                                                       "token": tok}, timeout=10)
    assert again.status_code == 401 and again.json()["error"]["code"] == "token_expired"
