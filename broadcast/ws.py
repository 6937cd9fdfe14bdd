"""The WebSocket transport: RFC 6455 on a socket the connection owns (broadcast/owned.py).

The frames a client sends are decoded in the read watcher's callback
(broadcast/wsframes.py) and its ops go to a greenlet that exists only while
there are ops to run. An event's frame is built once (`Event.ws_bytes`) and
the same bytes go to every subscriber.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import gevent

from broadcast.events import Event, dumps, utf8
from broadcast.hub import Connection
from broadcast.metrics import CLOSED
from broadcast.owned import OwnedConnection
from broadcast.ratelimit import TokenBucket
from broadcast.wsframes import (BINARY, CLOSE, PING, PING_FRAME, TEXT, TOO_LARGE, FrameDecoder,
                                ProtocolError, close_frame, control_frame, text_header)

log = logging.getLogger(__name__)

TOKEN_EXPIRED = 4001
_CLOSE_REASONS = {1013: "outbox_full", 1008: "flood", 1000: "normal", 1011: "server_error",
                  TOKEN_EXPIRED: "token_expired", 1002: "protocol_error", 1007: "protocol_error",
                  1001: "going_away"}

__all__ = ["PING_FRAME", "TOKEN_EXPIRED", "WebSocketConnection", "text_frame"]


def text_frame(obj: Any) -> bytes:
    payload = utf8(dumps(obj))
    return text_header(len(payload)) + payload


OnText = Callable[["WebSocketConnection", str], None]


class WebSocketConnection(OwnedConnection):
    transport = "ws"
    # A close frame sent, how long the client has to answer before the socket is shut anyway.
    END_WAIT_S = 2.0
    __slots__ = ("bucket", "decoder", "on_text", "deflate", "_ops", "_worker")

    def __init__(self, user: Any, sock: Any, *, outbox_limit: int, max_frame_bytes: int,
                 rate: float, burst: int, expires_at: float = math.inf, deflate: bool = False,
                 on_text: OnText, on_close: Callable[[WebSocketConnection], None]) -> None:
        """`on_text(conn, text)` runs each text message in order, on a greenlet of its own
        (it may block; it must not raise). `deflate`: permessage-deflate was agreed, so
        events go out compressed and the client's compressed messages are inflated.
        The rest as `OwnedConnection`."""
        super().__init__(user, sock, outbox_limit=outbox_limit, expires_at=expires_at,
                         on_close=on_close)
        self.bucket = TokenBucket(rate, burst)
        self.decoder = FrameDecoder(max_frame_bytes, deflate)
        self.on_text = on_text
        self.deflate = deflate
        self._ops: deque[str] | None = None
        self._worker = None

    def wire(self, ev: Event) -> bytes:
        return ev.ws_deflated if self.deflate else ev.ws_bytes

    def offer(self, ev: Event) -> None:
        """`Connection.offer`, its common case written out: this is fan-out's inner loop,
        once per subscriber per event; the four calls it saves per delivery are a tenth of
        fan-out's CPU at 50 events/s (13.8 -> 12.4 ms per 1,000 deliveries, BENCHMARKS.md
        issue 12). tests/unit/test_fanout_fast_path.py keeps it equal to the reference."""
        topic = ev.topic
        if topic in self.held:   # joining: the reference holds it back
            Connection.offer(self, ev)
            return
        key = ev.key
        if key is not None:
            if key <= (self.positions.get(topic) or (0, 0)):
                return
            self.positions[topic] = key
        elif ev.reset_to is not None:
            self.positions[topic] = ev.reset_to
        data = ev.ws_deflated if self.deflate else ev.ws_bytes
        if self.closed or self._outbox or not self.started:
            self.write(data)
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._finish()
            return
        if sent < len(data):
            self._outbox.append(memoryview(data)[sent:])
            self._want_write()

    def send(self, obj: Any) -> None:
        self.write(text_frame(obj))

    def keep_alive(self, stale: float) -> None:
        # A client that answered none of the last pings (nor sent anything) is gone.
        if self.last_seen < stale:
            self.abort()
        else:
            self.write(PING_FRAME)

    # -- reading ---------------------------------------------------------------------------

    def _read(self) -> None:
        data = self._recv()
        if data is None or self.closed:
            return   # closing: only the client's close (or EOF) matters now
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as exc:
            self.close(exc.code, exc.reason)
            return
        for kind, value in messages:   # the kind says what `value` is (`FrameDecoder.feed`)
            if kind in (TEXT, TOO_LARGE, BINARY):
                if not self.bucket.take():
                    self.close(1008, "too many frames")
                    return
                if kind == TEXT:
                    self._queue(cast(str, value))
                elif kind == TOO_LARGE:
                    self.send({"event": "error", "error": {
                        "code": "frame_too_large",
                        "message": f"frames are limited to {self.decoder.max_message} bytes"}})
                else:
                    self.send({"event": "error", "error": {
                        "code": "binary_not_supported", "message": "send JSON text frames"}})
            elif kind == PING:
                self.write(control_frame(0xA, cast(bytes, value)))
            elif kind == CLOSE:
                code = cast("tuple[int, str]", value)[0]
                self._end_with(close_frame(code if code != 1005 else 1000))   # the echo the RFC asks for
                return

    def _queue(self, text: str) -> None:
        if self._ops is None:
            self._ops = deque()
        self._ops.append(text)
        if self._worker is None:
            self._worker = gevent.spawn(self._run_ops)

    def _run_ops(self) -> None:
        # No switch between the last check of `_ops` and `_worker = None` (nothing here
        # blocks there), so an op queued by the read callback always finds a worker.
        try:
            while self._ops and not self.closed:
                self.on_text(self, self._ops.popleft())
        except Exception:  # noqa: BLE001 - past the handshake nothing may be raised: 1011
            log.exception("a WebSocket op failed")
            self.fail()
        finally:
            self._worker = None

    # -- ending ----------------------------------------------------------------------------

    def expire(self) -> None:
        self.close(TOKEN_EXPIRED, "token_expired")

    def overflow(self) -> None:
        self.close(1013, "outbox full, resume with since")

    def fail(self) -> None:
        """Close with 1011 (server error), once what is queued has been written."""
        self.close(1011, "internal error")

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame after the frame being written, then end the connection."""
        if self.closed:
            return
        CLOSED.labels(_CLOSE_REASONS.get(code, str(code))).inc()
        self._end_with(close_frame(code, reason))
