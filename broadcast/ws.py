"""The WebSocket transport: one socket per client, and no greenlet while it is idle.

The connection owns its socket once the handshake is done (realtime/websocket.py
takes it over from gunicorn): a read watcher on the event loop calls
`_on_readable` when bytes arrive, the frames are decoded there
(broadcast/wsframes.py), and the client's ops go to a greenlet that exists
only while there are ops to run. Frames to the client are written straight to
the non-blocking socket: an event's frame is built once (`Event.ws_bytes`)
and the same bytes go to every subscriber; what the kernel does not take
waits in a bounded outbox, written out by a write watcher. An idle connection
is a socket, a watcher and this object (BENCHMARKS.md, issue 11: a greenlet
parked in `recv` cost 8.8 KiB of saved stack per connection, the request it
came from more).

Everything here runs on the gevent loop's thread: callbacks never block,
and a connection is touched by one greenlet at a time.
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

from broadcast.events import Event, dumps, utf8
from broadcast.hub import Connection, Replay
from broadcast.metrics import CLOSED
from broadcast.ratelimit import TokenBucket
from broadcast.wsframes import (BINARY, CLOSE, PING, PING_FRAME, TEXT, TOO_LARGE, FrameDecoder,
                                ProtocolError, close_frame, control_frame, text_header)

log = logging.getLogger(__name__)

TOKEN_EXPIRED = 4001
_CLOSE_REASONS = {1013: "outbox_full", 1008: "flood", 1000: "normal", 1011: "server_error",
                  TOKEN_EXPIRED: "token_expired", 1002: "protocol_error", 1007: "protocol_error",
                  1001: "going_away"}
_READ, _WRITE = 1, 2
# A close frame sent, how long the client has to answer before the socket is shut anyway.
_CLOSE_WAIT_S = 2.0

__all__ = ["PING_FRAME", "TOKEN_EXPIRED", "WebSocketConnection", "text_frame"]


def text_frame(obj: Any) -> bytes:
    payload = utf8(dumps(obj))
    return text_header(len(payload)) + payload


OnText = Callable[["WebSocketConnection", str], None]


class WebSocketConnection(Connection):
    transport = "ws"
    __slots__ = ("sock", "fd", "outbox_limit", "bucket", "decoder", "last_seen", "closed",
                 "upgraded", "on_text", "on_close", "_outbox", "_reader", "_writer", "_timer",
                 "_ops", "_worker", "_drained", "_closing", "_finished")

    def __init__(self, user: Any, sock: Any, *, outbox_limit: int, max_frame_bytes: int,
                 rate: float, burst: int, expires_at: float = math.inf,
                 on_text: OnText, on_close: Callable[["WebSocketConnection"], None]) -> None:
        """`sock`: a non-blocking socket object (`_socket.socket`) this connection now owns.

        `on_text(conn, text)` runs each text message in order, on a greenlet of
        its own (it may block; it must not raise). `on_close(conn)` runs once,
        on a greenlet, when the connection has ended.
        """
        super().__init__(user, expires_at)
        self.sock = sock
        self.fd = sock.fileno()
        self.outbox_limit = outbox_limit
        self.bucket = TokenBucket(rate, burst)
        self.decoder = FrameDecoder(max_frame_bytes)
        self.last_seen = time.monotonic()
        self.closed = False
        # Until `start` writes the 101, frames (a heartbeat ping, an event of
        # the user topic joined during the handshake) wait in the outbox.
        self.upgraded = False
        self.on_text, self.on_close = on_text, on_close
        # A list, not a deque: it is almost always empty (56 bytes, a deque 624).
        self._outbox: list[memoryview] = []
        self._reader = self._writer = self._timer = None
        self._ops: deque[str] | None = None
        self._worker = None
        self._drained: gevent.event.Event | None = None   # made by a paced replay only
        self._closing = False
        self._finished = False

    # -- the handshake is done -------------------------------------------------------------

    def start(self, handshake: bytes) -> None:
        """Write the 101 (`handshake`) and what waited for it, then read."""
        self._outbox.insert(0, memoryview(handshake))
        self.upgraded = True
        self._flush()
        if not self._finished:
            self._reader = gevent.get_hub().loop.io(self.fd, _READ)
            self._reader.start(self._on_readable)

    # -- writing ---------------------------------------------------------------------------

    def send_event(self, ev: Event) -> None:
        self.write(ev.ws_bytes)

    def send_events(self, events: list[Event]) -> None:
        """Several events' frames with one system call; the outbox bound counts frames."""
        if self.closed or self._outbox or not self.upgraded:
            for ev in events:
                self.write(ev.ws_bytes)
            return
        frames = [ev.ws_bytes for ev in events]
        data = b"".join(frames)
        sent = self._send_now(data)
        if sent is None or sent == len(data):
            return
        view, start = memoryview(data), 0
        for frame in frames:
            end = start + len(frame)
            if end > sent:
                self._outbox.append(view[max(start, sent):end])
            start = end
        self._want_write()

    def send_replayed(self, events: list[Event]) -> None:
        # One chunk for the page: a replay is paced (`pace`), not bounded by the outbox.
        if events:
            self.write(b"".join(ev.ws_bytes for ev in events), bounded=False)

    def send(self, obj: Any) -> None:
        self.write(text_frame(obj))

    def write(self, data: bytes, bounded: bool = True) -> None:
        """Queue or write `data` without ever waiting: the hub calls this for every subscriber."""
        if self.closed:
            return
        if self._outbox or not self.upgraded:
            if bounded and len(self._outbox) >= self.outbox_limit:
                self.close(1013, "outbox full, resume with since")
                return
            self._outbox.append(memoryview(data))
            return
        sent = self._send_now(data)
        if sent is not None and sent < len(data):
            self._outbox.append(memoryview(data)[sent:])
            self._want_write()

    def _send_now(self, data) -> int | None:
        """What the kernel takes of `data` now; None when the socket failed (then ended)."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            self._finish()
            return None

    def _want_write(self) -> None:
        if self._writer is None and not self._finished:
            self._writer = gevent.get_hub().loop.io(self.fd, _WRITE)
            self._writer.start(self._flush)

    def _flush(self) -> None:
        """Write out the outbox as far as the kernel takes it (the write watcher's callback)."""
        outbox = self._outbox
        while outbox:
            chunk = outbox[0]
            sent = self._send_now(chunk)
            if sent is None:
                return
            if sent < len(chunk):
                outbox[0] = chunk[sent:]
                self._want_write()
                return
            del outbox[0]
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        if self._drained is not None:
            self._drained.set()
        if self._closing and not self._finished and self._timer is None:
            # The close frame is out: the client answers it (EOF), or the timer ends us.
            self._timer = gevent.get_hub().loop.timer(_CLOSE_WAIT_S)
            self._timer.start(self._finish)

    # -- reading ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            self._read()
        except Exception:  # noqa: BLE001 - a callback of the loop: nothing may escape, 1011
            log.exception("reading a WebSocket failed")
            self.fail()

    def _read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._finish()
            return
        self.last_seen = time.monotonic()
        if self.closed:
            return   # closing: only the client's close (or EOF) matters now
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as exc:
            self.close(exc.code, exc.reason)
            return
        for kind, value in messages:
            if kind == TEXT or kind == TOO_LARGE or kind == BINARY:
                if not self.bucket.take():
                    self.close(1008, "too many frames")
                    return
                if kind == TEXT:
                    self._queue(value)
                elif kind == TOO_LARGE:
                    self.send({"event": "error", "error": {
                        "code": "frame_too_large",
                        "message": f"frames are limited to {self.decoder.max_message} bytes"}})
                else:
                    self.send({"event": "error", "error": {
                        "code": "binary_not_supported", "message": "send JSON text frames"}})
            elif kind == PING:
                self.write(control_frame(0xA, value))
            elif kind == CLOSE:
                code = value[0]
                self._send_close(code if code != 1005 else 1000)   # the echo the RFC asks for
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

    # -- replays, paced by the client's reading ---------------------------------------------

    def pace(self, replay: Replay) -> None:
        gevent.spawn(self._pace, replay)

    def _pace(self, replay: Replay) -> None:
        """Read the replay on, a page each time the client has taken what was written."""
        try:
            while not self.closed and replay.step():
                while self._outbox and not self.closed:
                    if self._drained is None:
                        self._drained = gevent.event.Event()
                    self._drained.clear()
                    self._drained.wait(5.0)
        except Exception:  # noqa: BLE001 - a failed replay ends this connection, not the process
            log.exception("replay of %s failed", replay.topic)
            self.fail()

    # -- ending ----------------------------------------------------------------------------

    def expire(self) -> None:
        self.close(TOKEN_EXPIRED, "token_expired")

    def fail(self) -> None:
        """Close with 1011 (server error), once what is queued has been written."""
        self.close(1011, "internal error")

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame after the frame being written, then end the connection."""
        if self.closed:
            return
        CLOSED.labels(_CLOSE_REASONS.get(code, str(code))).inc()
        self._send_close(code, reason)

    def _send_close(self, code: int, reason: str = "") -> None:
        self.closed = self._closing = True
        if not self.upgraded:
            self._outbox.clear()
            return
        # Keep the frame being written (it may be half sent), drop the rest: the
        # client resumes from its cursor.
        del self._outbox[1:]
        self._outbox.append(memoryview(close_frame(code, reason)))
        self._flush()

    def abort(self) -> None:
        """End at once, without a close frame (a dead peer: no pong to our pings)."""
        self.closed = True
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = self.closed = True
        for watcher in (self._reader, self._writer, self._timer):
            if watcher is not None:
                watcher.stop()
        self._reader = self._writer = self._timer = None
        self._outbox.clear()
        if self._drained is not None:
            self._drained.set()
        try:
            self.sock.close()
        except OSError:
            pass
        gevent.spawn(self._closed)

    def _closed(self) -> None:
        try:
            self.on_close(self)
        except Exception:  # noqa: BLE001 - cleanup of one connection must not stop the loop
            log.exception("cleanup of a WebSocket connection failed")
