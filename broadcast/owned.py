"""A connection that owns its socket, and holds no greenlet while it is idle.

Both transports that outlive their request, WebSocket (broadcast/ws.py) and
Server-Sent Events (broadcast/sse.py), take their socket over from gunicorn
once the handshake is checked (realtime/takeover.py). From then on a
connection is a socket, a read watcher on the event loop and one of these
objects: no request, no environ, no greenlet parked in a read (BENCHMARKS.md,
issue 11: a parked greenlet's saved stack alone was 8.8 KiB per connection).

Writes go straight to the non-blocking socket: an event's bytes are built
once where they can be shared (`Event.ws_bytes`) and what the kernel does not
take waits in a bounded outbox, written out by a write watcher. A client that
lets the outbox fill is ended (`overflow`) and resumes from its cursor. A
replay is read on a page at a time as the socket drains (`pace`), past the
outbox's bound, so any replay inside the kept history completes.

Everything here runs on the gevent loop's thread: callbacks never block, and
a connection is touched by one greenlet at a time.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

from broadcast.events import Event
from broadcast.hub import Connection, Replay

log = logging.getLogger(__name__)

_READ, _WRITE = 1, 2


class OwnedConnection(Connection):
    """The socket side shared by the transports; a subclass says how events and ends look.

    Subclasses give `wire(ev)` (an event's bytes on this transport), `_read()`
    (what arriving bytes mean), `keep_alive(stale)`, `expire()`, `fail()` and
    `overflow()`. `END_WAIT_S` is how long an ended connection waits for the
    client to close its side before the socket is shut anyway.
    """

    END_WAIT_S = 0.0
    __slots__ = ("sock", "fd", "outbox_limit", "last_seen", "closed", "started", "on_close",
                 "_outbox", "_reader", "_writer", "_timer", "_drained", "_closing", "_finished")

    def __init__(self, user: Any, sock: Any, *, outbox_limit: int, expires_at: float = math.inf,
                 on_close: Callable[[Any], None]) -> None:
        """`sock`: a non-blocking socket object (`_socket.socket`) this connection now owns.

        `on_close(conn)` runs once, on a greenlet, when the connection has ended.
        """
        super().__init__(user, expires_at)
        self.sock = sock
        self.fd = sock.fileno()
        self.outbox_limit = outbox_limit
        self.last_seen = time.monotonic()
        self.closed = False
        # Until `start` writes the response head, what is sent (events of the
        # topics joined during the handshake, a heartbeat) waits in the outbox.
        self.started = False
        self.on_close = on_close
        # A list, not a deque: it is almost always empty (56 bytes, a deque 624).
        self._outbox: list[memoryview] = []
        # The loop's watchers (gevent's io and timer), while they are wanted.
        self._reader: Any = None
        self._writer: Any = None
        self._timer: Any = None
        self._drained: gevent.event.Event | None = None   # made by a paced replay only
        self._closing = False
        self._finished = False

    # -- what a transport says ---------------------------------------------------------------

    def wire(self, ev: Event) -> bytes:
        """`ev` as this transport writes it (called once per event sent, in order)."""
        raise NotImplementedError

    def _read(self) -> None:
        raise NotImplementedError

    def keep_alive(self, stale: float) -> None:
        """The keep-alive round (realtime/takeover.py): show the client we are here."""
        raise NotImplementedError

    def overflow(self) -> None:
        """The client let the outbox fill: end it; it resumes from its cursor."""
        raise NotImplementedError

    def fail(self) -> None:
        """Reading or a replay failed (and was logged): end the connection."""
        raise NotImplementedError

    # -- the handshake is done -------------------------------------------------------------

    def start(self, head: bytes) -> None:
        """Write the response head and what waited for it, then read."""
        self._outbox.insert(0, memoryview(head))
        self.started = True
        self._flush()
        if not self._finished:
            self._reader = gevent.get_hub().loop.io(self.fd, _READ)
            self._reader.start(self._on_readable)

    # -- writing ---------------------------------------------------------------------------

    def send_event(self, ev: Event) -> None:
        self.write(self.wire(ev))

    def send_events(self, events: list[Event]) -> None:
        """Several events with one system call; the outbox bound counts events."""
        if self.closed or self._outbox or not self.started:
            for ev in events:
                self.write(self.wire(ev))
            return
        frames = [self.wire(ev) for ev in events]
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
            self.write(b"".join([self.wire(ev) for ev in events]), bounded=False)

    def write(self, data: bytes, bounded: bool = True) -> None:
        """Queue or write `data` without ever waiting: the hub calls this for every subscriber."""
        if self.closed:
            return
        if self._outbox or not self.started:
            if bounded and len(self._outbox) >= self.outbox_limit:
                self.overflow()
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
            # The last bytes are out: the client closes its side (EOF), or the timer ends us.
            self._timer = gevent.get_hub().loop.timer(self.END_WAIT_S)
            self._timer.start(self._finish)

    # -- reading ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            self._read()
        except Exception:  # noqa: BLE001 - a callback of the loop: nothing may escape
            log.exception("reading a %s connection failed", self.transport)
            self.fail()

    def _recv(self) -> bytes | None:
        """What arrived; None when nothing did after all. At EOF the connection is finished."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            self._finish()
            return None
        self.last_seen = time.monotonic()
        return data

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

    def _end_with(self, last: bytes) -> None:
        """Write `last` after the frame being written, then end the connection."""
        self.closed = self._closing = True
        if not self.started:
            self._outbox.clear()
            return
        # Keep the frame being written (it may be half sent), drop the rest: the
        # client resumes from its cursor.
        del self._outbox[1:]
        self._outbox.append(memoryview(last))
        self._flush()

    def discard(self) -> None:
        """Never started and never will be (its setup failed): stop whatever waits on it,
        a paced replay first. The socket is its owner's to close."""
        self.closed = True
        self._outbox.clear()
        if self._drained is not None:
            self._drained.set()

    def abort(self) -> None:
        """End at once, with nothing more written (a dead peer)."""
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
            log.exception("cleanup of a %s connection failed", self.transport)
