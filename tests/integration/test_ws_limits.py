"""Bounded everything: bad frames keep the connection, floods get 1008, slow readers 1013."""
from __future__ import annotations

import json
import time
import socket
import uuid

import pytest
import requests
import websocket

from tests.support.clients import WsClient, auth, token
from tests.support.procs import WebServer


@pytest.fixture
def server(procs, stack_env):
    env = {**stack_env, "SB_CLIENT_BURST": "30", "SB_CLIENT_RATE": "5",
           "SB_MAX_FRAME_BYTES": "4096", "SB_OUTBOX_LIMIT": "16"}
    return procs.start(WebServer(env, procs.log_dir, "web-limits"))


def test_bad_frames_get_errors_and_the_connection_stays(server):
    ws = WsClient(server.url, token("u-bad"))
    ws.send_raw = ws.ws.send
    ws.send_raw("{not json")
    assert ws.recv()["error"]["code"] == "invalid_json"
    ws.send({"op": "dance", "ref": 1})
    assert ws.recv() == {"event": "ack", "ref": 1, "ok": False,
                         "error": {"code": "unknown_op", "message": "unknown op 'dance'"}}
    ws.send({"op": "subscribe", "topic": "product:1", "since": "yesterday", "ref": 2})
    assert ws.recv()["error"]["code"] == "invalid_cursor"
    ws.send({"op": "subscribe", "topic": "admin", "ref": 3})
    assert ws.recv()["error"]["code"] == "forbidden_topic"
    ws.send({"op": "emit", "event": "nope", "data": {}, "ref": 4})
    assert ws.recv()["error"]["code"] == "unknown_event"
    ws.send_raw("x" * 5000)
    assert ws.recv()["error"]["code"] == "frame_too_large"
    assert ws.request({"op": "ping"})["ok"] is True
    ws.close()


def test_unauthenticated_or_foreign_origin_is_refused(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        websocket.create_connection(server.url.replace("http", "ws") + "/ws", timeout=5)
    assert err.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        websocket.create_connection(server.url.replace("http", "ws") + f"/ws?token={token('u')}",
                                    timeout=5, origin="https://evil.example")
    assert err.value.status_code == 403


def test_a_flooding_client_is_closed_with_1008(server):
    ws = WsClient(server.url, token("u-flood"))
    for _ in range(200):
        try:
            ws.send({"op": "ping"})
        except (BrokenPipeError, ConnectionResetError, websocket.WebSocketConnectionClosedException):
            break
    code = None
    try:
        while True:
            # recv_frame, not recv_data: the latter answers a close frame itself,
            # into a socket the server has already shut.
            frame = ws.ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(frame.data[:2], "big")
                break
    except (websocket.WebSocketConnectionClosedException, ConnectionResetError):
        pass
    assert code == 1008


def test_a_client_that_does_not_read_is_cut_off_not_buffered(server):
    topic = f"product:{uuid.uuid4().hex[:8]}"
    ws = websocket.WebSocket()
    ws.connect(server.url.replace("http", "ws") + f"/ws?token={token('u-slow')}", timeout=10,
               sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    ws.send(json.dumps({"op": "subscribe", "topic": topic, "ref": "s"}))
    assert json.loads(ws.recv())["ok"] is True
    big = "y" * 60_000
    session = requests.Session()
    closed = False
    for i in range(400):
        session.post(f"{server.url}/api/v1/broadcast", headers=auth("store", "service"),
                     json={"topic": topic, "event": "blob", "data": {"i": i, "pad": big}}, timeout=10)
        metrics = session.get(f"{server.url}/metrics", timeout=10).text
        if 'switchboard_connections_closed_total{reason="outbox_full"}' in metrics:
            closed = True
            break
    assert closed, "the server kept buffering for a client that never reads"
    ws.close()


def test_connections_per_user_are_capped(procs, stack_env):
    env = {**stack_env, "SB_MAX_CONNECTIONS_PER_USER": "2"}
    server = procs.start(WebServer(env, procs.log_dir, "web-cap"))
    first, second = (WsClient(server.url, token("u-cap")) for _ in range(2))
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        WsClient(server.url, token("u-cap"))
    assert err.value.status_code == 429
    other = WsClient(server.url, token("u-other"))  # the cap is per user
    first.close()
    third = None
    import time
    deadline = time.monotonic() + 10
    while third is None:  # the server notices the close asynchronously
        try:
            third = WsClient(server.url, token("u-cap"))
        except websocket.WebSocketBadStatusException:
            assert time.monotonic() < deadline, "the closed connection was never released"
            time.sleep(0.05)
    for ws in (second, other, third):
        ws.close()


def test_the_per_user_connection_cap_holds_across_processes(procs, stack_env):
    """SB_MAX_CONNECTIONS_PER_USER counts every web process's connections, not one's."""
    env = {**stack_env, "SB_MAX_CONNECTIONS_PER_USER": "3"}
    a = procs.start(WebServer(env, procs.log_dir, "web-cap-a"))
    b = procs.start(WebServer(env, procs.log_dir, "web-cap-b"))
    tok = token("u-capped")
    held = [WsClient(a.url, tok), WsClient(b.url, tok), WsClient(a.url, tok)]
    for url in (a.url, b.url):
        with pytest.raises(websocket.WebSocketBadStatusException) as err:
            websocket.create_connection(url.replace("http", "ws") + f"/ws?token={tok}", timeout=10)
        assert err.value.status_code == 429
        resp = requests.get(f"{url}/events", params={"topics": "product:1", "token": tok},
                            stream=True, timeout=10)
        assert resp.status_code == 429 and resp.json()["error"]["code"] == "too_many_connections"
        assert int(resp.headers["Retry-After"]) > 0
    held.pop().close()
    # The closed one's slot comes back (counted down once its connection ended).
    deadline = time.monotonic() + 10
    while True:
        try:
            held.append(WsClient(b.url, tok))
            break
        except websocket.WebSocketBadStatusException:
            assert time.monotonic() < deadline
            time.sleep(0.05)  # the server sees the close a moment after the client sends it
    for ws in held:
        ws.close()
