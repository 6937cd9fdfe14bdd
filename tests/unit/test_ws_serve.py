"""Once a WebSocket is upgraded, nothing but WebSocket frames may reach its socket."""
from __future__ import annotations

import os

import gevent
import pytest

from broadcast.ws import WebSocketConnection
from tests.support.sockets import owned_pair, read_to_eof

HANDSHAKE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("where", ["op handler", "read loop"])
def test_a_failure_after_the_upgrade_closes_with_1011_never_http(where):
    raw, client = owned_pair()
    closed = []

    def on_text(_conn, text):
        raise RuntimeError("a bug in a handler")

    conn = WebSocketConnection(None, raw, outbox_limit=16, max_frame_bytes=4096, rate=100, burst=100,
                               on_text=on_text, on_close=closed.append)
    if where == "read loop":
        class Broken:
            def take(self):
                raise RuntimeError("a bug in the read loop")
        conn.bucket = Broken()
    conn.start(HANDSHAKE)
    client.sendall(_masked_text(b'{"op": "ping"}'))
    data = read_to_eof(client)
    head, _, frames = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert b"HTTP/" not in frames
    assert frames[:1] == b"\x88" and int.from_bytes(frames[2:4], "big") == 1011
    with gevent.Timeout(5):
        while not closed:
            gevent.sleep(0.01)   # the cleanup runs on a greenlet of its own
    assert closed == [conn]
