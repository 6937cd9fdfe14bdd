"""The Server-Sent Events transport on a socket the connection owns (broadcast/owned.py).

A stream is one HTTP response that never ends by itself: each event is an
SSE record (`id:` the stream's cursor over all its topics, `event:`, `data:`
the frame), in a chunk of its own. The `id:` line is this stream's own
(one cursor covering every topic it follows), so an SSE record is built per
connection; an ephemeral event carries no `id:` and never moves the
browser's Last-Event-ID. A stream that ends (its token ran out, it fell
behind) ends its response: EventSource reconnects with Last-Event-ID.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from broadcast.events import Event, advance, encode_cursor, utf8
from broadcast.metrics import CLOSED
from broadcast.owned import OwnedConnection

# The browser reconnects this long after a stream ends (the SSE `retry:` field).
RETRY_MS = 2000


def head(chunked: bool) -> bytes:
    """The response head and the stream's first record, at once, so proxies and browsers see
    it open. HTTP/1.0 has no chunks: its response ends where the connection does."""
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Connection: close\r\n"
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
            b"Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n" + framing + b"\r\n"
            + _chunk(b": open\nretry: %d\n\n" % RETRY_MS, chunked))


def _chunk(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data


class SseConnection(OwnedConnection):
    transport = "sse"
    __slots__ = ("chunked", "cursors")

    def __init__(self, user: Any, sock: Any, *, outbox_limit: int, expires_at: float = math.inf,
                 chunked: bool = True, on_close: Callable[[SseConnection], None]) -> None:
        super().__init__(user, sock, outbox_limit=outbox_limit, expires_at=expires_at,
                         on_close=on_close)
        self.chunked = chunked
        self.cursors: dict[str, str] = {}   # topic -> the newest event sent (the stream's id)

    def record(self, ev: Event) -> str:
        """`ev` as an SSE record; moves the stream's cursor past it (or to a reset point)."""
        if not advance(self.cursors, ev):
            return f"event: {ev.name}\ndata: {ev.frame}\n\n"
        return f"id: {encode_cursor(self.cursors)}\nevent: {ev.name}\ndata: {ev.frame}\n\n"

    def wire(self, ev: Event) -> bytes:
        return _chunk(utf8(self.record(ev)), self.chunked)

    def keep_alive(self, stale: float) -> None:
        # A comment: it keeps proxies from timing the stream out, and a write to a
        # peer that is gone fails, which ends the stream.
        self.write(_chunk(b": heartbeat\n\n", self.chunked))

    def _read(self) -> None:
        # A client sends nothing on a stream: only its EOF matters (`_recv` ends us there).
        self._recv()

    def expire(self) -> None:
        self._end("token_expired", b": token expired\n\n")

    def overflow(self) -> None:
        self._end("sse_overflow")

    def fail(self) -> None:
        self._end("server_error")

    def _end(self, reason: str, last: bytes = b"") -> None:
        """End the response after what is being written: the client reconnects with
        Last-Event-ID and resumes."""
        if self.closed:
            return
        CLOSED.labels(reason).inc()
        if self.chunked:   # the last chunk, then the zero-length one that ends the response
            last = (_chunk(last, True) if last else b"") + b"0\r\n\r\n"
        self._end_with(last)
