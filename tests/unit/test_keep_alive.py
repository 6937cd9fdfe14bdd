"""The keep-alive pass: pings live WebSockets, ends silent ones, sends SSE streams a
heartbeat, leaves long polls alone, and gives the loop back on a long pass."""
from __future__ import annotations

import threading
import time

import gevent

from broadcast.poll import PollConnection
from broadcast.sse import SseConnection
from broadcast.ws import PING_FRAME, WebSocketConnection
from realtime import takeover
from tests.support.sockets import owned_pair


class FakeHub:
    def __init__(self, connections) -> None:
        self.connections = set(connections)


def _ws(quiet_for: float):
    raw, theirs = owned_pair()
    conn = WebSocketConnection(None, raw, outbox_limit=16, max_frame_bytes=4096, rate=10, burst=10,
                               on_text=lambda c, t: None, on_close=lambda c: None)
    conn.start(b"")
    conn.last_seen = time.monotonic() - quiet_for
    return conn, theirs


def _sse():
    raw, theirs = owned_pair()
    conn = SseConnection(None, raw, outbox_limit=16, on_close=lambda c: None)
    conn.start(b"")
    conn.last_seen = time.monotonic() - 100.0   # a stream's client never writes: not a sign
    return conn, theirs


def _received(sock) -> bytes:
    with gevent.Timeout(5):
        return sock.recv(4096)


def test_websockets_are_pinged_or_ended_streams_get_a_heartbeat_polls_are_left_alone():
    (live, live_peer), (silent, silent_peer), (sse, sse_peer) = _ws(1.0), _ws(100.0), _sse()
    poll = PollConnection(None, 16)
    takeover.keep_alive_round(FakeHub([live, silent, sse, poll]), interval=10.0)
    assert _received(live_peer) == PING_FRAME and not live.closed
    assert silent.closed and _received(silent_peer) == b""          # ended without a word
    assert _received(sse_peer) == b"d\r\n: heartbeat\n\n\r\n" and not sse.closed
    assert not poll.queue and not poll.expired


def test_a_long_pass_gives_the_loop_back_between_chunks(monkeypatch):
    yields = []
    # time.sleep is the whole process's: threads left by earlier tests keep their own.
    real_sleep, me = time.sleep, threading.current_thread()
    monkeypatch.setattr(takeover.time, "sleep",
                        lambda s: yields.append(s) if threading.current_thread() is me else real_sleep(s))
    conns = [_ws(0.0) for _ in range(1200)]
    takeover.keep_alive_round(FakeHub([c for c, _ in conns]), interval=10.0, chunk=500)
    assert yields == [0, 0]                      # after 500 and after 1,000
    assert all(_received(peer) == PING_FRAME for _, peer in conns)
