"""Once a WebSocket is upgraded, nothing but WebSocket frames may reach its socket."""
from __future__ import annotations

import base64
import os

import gevent
import gevent.socket
import pytest

from broadcast.ws import WebSocketConnection

ENVIRON = {"HTTP_HOST": "x", "HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "Upgrade",
           "HTTP_SEC_WEBSOCKET_VERSION": "13", "PATH_INFO": "/ws"}


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_all(sock) -> bytes:
    out = b""
    with gevent.Timeout(5):
        while True:
            data = sock.recv(4096)
            if not data:
                return out
            out += data


@pytest.mark.parametrize("where", ["frame handler", "read loop"])
def test_a_failure_after_the_upgrade_closes_with_1011_never_http(where):
    server, client = gevent.socket.socketpair()
    conn = WebSocketConnection(None, server, outbox_limit=16, max_frame_bytes=4096, rate=100, burst=100)
    environ = {**ENVIRON, "HTTP_SEC_WEBSOCKET_KEY": base64.b64encode(os.urandom(16)).decode()}

    def on_text(_conn, text):
        raise RuntimeError("a bug in a handler")

    def broken_bucket():
        raise RuntimeError("a bug in the read loop")

    if where == "read loop":
        conn.bucket.take = broken_bucket
    serving = gevent.spawn(conn.serve, environ, on_text)
    client.sendall(_masked_text(b'{"op": "ping"}'))
    serving.join(timeout=5)
    assert serving.successful(), serving.exception   # serve() itself never raises
    server.shutdown(2)
    data = _read_all(client)
    head, _, frames = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert b"HTTP/" not in frames
    assert frames[:1] == b"\x88" and int.from_bytes(frames[2:4], "big") == 1011
