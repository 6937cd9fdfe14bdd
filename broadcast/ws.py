"""`GET /ws`: the WebSocket transport, one greenlet and one socket per client.

The handshake and the client's frames go through wsproto; frames to the
client are written straight to the socket: an event's frame is built once
(`Event.ws_bytes`) and the same bytes go to every subscriber. A write that
would block is parked in the connection's bounded outbox and drained by a
greenlet that exists only while the outbox is non-empty, so an idle
connection costs one greenlet and one file descriptor (flask-sock's
simple-websocket under gevent costs two of each: DESIGN.md's trap).
"""
from __future__ import annotations

import logging
import math
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.socket
from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Request,
                             TextMessage)

from broadcast.events import Event, dumps, utf8, ws_text_header
from broadcast.hub import Connection, Replay
from broadcast.metrics import CLOSED
from broadcast.ratelimit import TokenBucket

log = logging.getLogger(__name__)

PING_FRAME = b"\x89\x00"
_CLOSE_REASONS = {1013: "outbox_full", 1008: "flood", 1000: "normal", 1011: "server_error",
                  4001: "token_expired"}
TOKEN_EXPIRED = 4001


def text_frame(obj: Any) -> bytes:
    payload = utf8(dumps(obj))
    return ws_text_header(len(payload)) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    payload = code.to_bytes(2, "big") + reason.encode()[:120]
    return bytes([0x88, len(payload)]) + payload


def raw_socket(environ: dict) -> socket.socket | None:
    """The client's socket, taken over from the WSGI server without dup()."""
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        return sock
    wsgi_input = environ.get("wsgi.input")
    rfile = getattr(wsgi_input, "rfile", None)
    raw = getattr(rfile, "raw", None)
    return getattr(raw, "_sock", None)


class WebSocketConnection(Connection):
    transport = "ws"

    def __init__(self, user: Any, sock: socket.socket, *, outbox_limit: int,
                 max_frame_bytes: int, rate: float, burst: int,
                 expires_at: float = math.inf) -> None:
        super().__init__(user, expires_at)
        self.sock = sock
        # Plain gevent sockets only: under TLS the wrapper must do the writing.
        self.direct = type(sock) is gevent.socket.socket
        self.outbox: deque[memoryview] = deque()
        self.outbox_limit = outbox_limit
        self.max_frame_bytes = max_frame_bytes
        self.bucket = TokenBucket(rate, burst)
        # Until serve() has written the handshake response, frames (a heartbeat
        # ping, an event of the user topic joined before serve) wait in the
        # outbox: nothing may reach the socket before the 101.
        self.flushing = True
        self._drained: gevent.event.Event | None = None   # made by a paced replay only
        self.upgraded = False
        self.closed = False
        self.last_seen = time.monotonic()

    # writing
    def send_event(self, ev: Event) -> None:
        self.write(ev.ws_bytes)

    def send_events(self, events: list[Event]) -> None:
        """Several events' frames with one system call (the queueing is per frame, as in write)."""
        if self.closed or self.flushing:
            for ev in events:
                self.write(ev.ws_bytes)
            return
        frames = [ev.ws_bytes for ev in events]
        data = b"".join(frames)
        sent = self._send_now(data)
        if sent is None or sent == len(data):
            return
        # Queue the unsent rest frame by frame, so the outbox limit counts frames.
        view = memoryview(data)
        start = 0
        for frame in frames:
            end = start + len(frame)
            if end > sent:
                if not self.flushing:
                    self.outbox.append(view[max(start, sent):end])
                    self.flushing = True
                    gevent.spawn(self._flush)
                else:
                    self.write(frame)
            start = end

    def send_replayed(self, events: list[Event]) -> None:
        # One chunk for the page: a replay is paced (`pace`), not bounded by the outbox.
        if events:
            self.write(b"".join(ev.ws_bytes for ev in events), bounded=False)

    def pace(self, replay: Replay) -> None:
        gevent.spawn(self._pace, replay)

    def _pace(self, replay: Replay) -> None:
        """Read the replay on, a page each time the client has taken what was written."""
        try:
            while not self.closed and replay.step():
                while self.flushing and not self.closed:
                    if self._drained is None:
                        self._drained = gevent.event.Event()
                    self._drained.clear()
                    self._drained.wait(5.0)
        except Exception:  # noqa: BLE001 - a failed replay ends this connection, not the process
            log.exception("replay of %s failed", replay.topic)
            self.fail()

    def send(self, obj: Any) -> None:
        self.write(text_frame(obj))

    def write(self, data: bytes, bounded: bool = True) -> None:
        """Queue or write `data` without ever waiting: the hub calls this for every subscriber."""
        if self.closed:
            return
        if self.flushing:
            if bounded and len(self.outbox) >= self.outbox_limit:
                self.close(1013, "outbox full, resume with since")
                return
            self.outbox.append(memoryview(data))
            return
        sent = self._send_now(data)
        if sent is not None and sent < len(data):
            self.outbox.append(memoryview(data)[sent:])
            self.flushing = True
            gevent.spawn(self._flush)

    def _send_now(self, data: bytes) -> int | None:
        """What the kernel takes of `data` now; None when the socket failed (then aborted).

        Calls the non-blocking OS socket under gevent's wrapper directly: this
        runs once per subscriber per event, and must never wait anyway.
        """
        try:
            if self.direct:
                return self.sock._sock.send(data)
            return self.sock.send(data, 0, timeout=0.0)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno in (11, 35):  # EAGAIN / EWOULDBLOCK
                return 0
            self._abort()
            return None

    def _flush(self) -> None:
        try:
            while self.outbox:
                chunk = self.outbox.popleft()
                self.sock.sendall(chunk)
        except OSError:
            self._abort()
        finally:
            self.flushing = False
            if self._drained is not None:
                self._drained.set()

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame after what is being written, then end the connection."""
        if self.closed:
            return
        CLOSED.labels(_CLOSE_REASONS.get(code, str(code))).inc()
        if self.flushing:
            # Keep the frame being written (it may be half sent) and drop the
            # rest: the client resumes from its cursor.
            while len(self.outbox) > 1:
                self.outbox.pop()
            self.outbox.append(memoryview(close_frame(code, reason)))
            self.closed = True
            gevent.spawn_later(5, self._abort)
            return
        self.write(close_frame(code, reason))
        self.closed = True
        gevent.spawn_later(1, self._abort)

    def _abort(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # reading
    def serve(self, environ: dict, on_text: Callable[["WebSocketConnection", str], None]) -> None:
        """Finish the handshake, then read frames until the client goes away.

        Never raises once the 101 is written: from then on the socket speaks
        WebSocket, and an HTTP error response written into it would be read
        as a frame (and the client's next frames as HTTP). A failure after
        the upgrade closes the connection with 1011 instead.
        """
        proto = WSConnection(ConnectionType.SERVER)
        headers = [(k[5:].replace("_", "-").lower().encode(), str(v).encode())
                   for k, v in environ.items() if k.startswith("HTTP_")]
        proto.initiate_upgrade_connection(headers, environ.get("PATH_INFO", "/ws"))
        for ev in proto.events():
            if isinstance(ev, Request):
                self.sock.sendall(proto.send(AcceptConnection()))
                self.upgraded = True
        try:
            self._flush()  # what was written before the handshake; then writes go straight out
            self._read_frames(proto, on_text)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("WebSocket connection failed after the upgrade")
            self.fail()
        self.closed = True

    def expire(self) -> None:
        self.close(TOKEN_EXPIRED, "token_expired")

    def fail(self) -> None:
        """Close with 1011 (server error), once what is queued has been written."""
        self.close(1011, "internal error")

    def _read_frames(self, proto: WSConnection,
                     on_text: Callable[["WebSocketConnection", str], None]) -> None:
        parts: list[str] = []
        size = 0
        oversized = False
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            self.last_seen = time.monotonic()
            proto.receive_data(data)
            for ev in proto.events():
                if isinstance(ev, TextMessage):
                    size += len(ev.data)
                    if size > self.max_frame_bytes:
                        oversized = True
                        parts.clear()
                    elif not oversized:
                        parts.append(ev.data)
                    if not ev.message_finished:
                        continue
                    text, was_oversized = "".join(parts), oversized
                    parts.clear()
                    size, oversized = 0, False
                    if not self.bucket.take():
                        self.close(1008, "too many frames")
                        break
                    if was_oversized:
                        self.send({"event": "error", "error": {
                            "code": "frame_too_large",
                            "message": f"frames are limited to {self.max_frame_bytes} bytes"}})
                        continue
                    on_text(self, text)
                elif isinstance(ev, BytesMessage):
                    if ev.message_finished:
                        self.send({"event": "error", "error": {
                            "code": "binary_not_supported", "message": "send JSON text frames"}})
                elif isinstance(ev, Ping):
                    self.write(proto.send(ev.response()))
                elif isinstance(ev, CloseConnection):
                    if not self.closed:
                        try:
                            self.write(proto.send(ev.response()))
                        except Exception:  # noqa: BLE001 - the peer is gone either way
                            pass
                    self.closed = True
                    break
