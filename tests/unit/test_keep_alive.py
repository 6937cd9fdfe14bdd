"""The keep-alive pass: pings the live WebSockets, ends the silent ones, leaves the rest."""
from __future__ import annotations

import time

from broadcast.ws import PING_FRAME
from realtime import websocket


class FakeConn:
    def __init__(self, transport: str, quiet_for: float) -> None:
        self.transport = transport
        self.last_seen = time.monotonic() - quiet_for
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True


class FakeHub:
    def __init__(self, connections) -> None:
        self.connections = set(connections)


def test_live_websockets_are_pinged_silent_ones_ended_and_streams_left_alone():
    live, silent, sse = FakeConn("ws", 1.0), FakeConn("ws", 100.0), FakeConn("sse", 100.0)
    websocket.ping_round(FakeHub([live, silent, sse]), interval=10.0)
    assert live.written == [PING_FRAME] and not live.aborted
    assert silent.aborted and silent.written == []
    assert sse.written == [] and not sse.aborted


def test_a_long_pass_gives_the_loop_back_between_chunks(monkeypatch):
    yields = []
    monkeypatch.setattr(websocket.time, "sleep", lambda s: yields.append(s))
    conns = [FakeConn("ws", 0.0) for _ in range(1200)]
    websocket.ping_round(FakeHub(conns), interval=10.0, chunk=500)
    assert yields == [0, 0]                      # after 500 and after 1,000
    assert all(c.written == [PING_FRAME] for c in conns)
