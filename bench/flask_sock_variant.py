"""Switchboard with `/ws` served by flask-sock + simple-websocket: the measured alternative.

For benchmarking only (bench/run-one.sh `switchboard-flask-sock`): the same app
as `app:create_app()`, except that WebSocket upgrades of `/ws` are served the
way a flask-sock user would serve them instead of by our own path
(realtime/websocket.py + broadcast/ws.py):

- `/ws` is taken out of the streams served beneath Flask (realtime/takeover.py),
  so an upgrade of `/ws` becomes a Flask request, matched by a flask-sock route (`websocket=True`;
  the plain GET of `/ws` still reaches realtime/streams.py's view).
- Before the handshake (a `before_request` of the route's blueprint, so a
  refusal is still the contract's JSON error): the origin check, the
  principal from the token, admission (the bound on setups at once) and
  `presence.connect` (429 past the per-user cap).
- flask-sock builds a `simple_websocket.Server`, which writes the 101, keeps
  gunicorn's socket and starts a reader thread (under gunicorn's gevent
  worker: a greenlet) that parses frames with wsproto; pings are its own
  (`ping_interval`, per connection, instead of our one keep-alive loop).
- The view holds the Flask request (its greenlet, environ and contexts) for
  the connection's life: it registers a `FlaskSockConnection` with the hub,
  joins `user:<id>`, then loops `ws.receive()` -> `ops.handle(...)`; at the
  end `hub.drop` and `presence.disconnect`.
- Events are sent with `ws.send(ev.frame)`, so wsproto encodes every frame
  for every subscriber (ours builds an event's frame once). The hub never
  waits on a socket: sends go to a bounded outbox (1013 past
  `outbox_limit`) drained by a writer greenlet that exists while the outbox
  is not empty.

Run: gunicorn -c gunicorn.conf.py 'bench.flask_sock_variant:create_app()'
(from the repository root, gevent worker: the stdlib is monkey-patched, and
simple-websocket is given the patched `threading` and `selectors` classes).
"""
from __future__ import annotations

import logging
import math
import selectors
import threading
from collections import deque
from typing import Any

import gevent
import gevent.event
from flask import Blueprint, Flask, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

import app as switchboard
from broadcast.events import dumps
from broadcast.hub import Connection, Replay
from broadcast.metrics import CLOSED, CONNECTIONS
from broadcast.ratelimit import TokenBucket
from broadcast.ws import WebSocketConnection
from realtime import ops
from realtime.admission import Admission, check_origin, principal_of
from realtime.takeover import Streams

log = logging.getLogger(__name__)

TOKEN_EXPIRED = 4001
_CLOSE_REASONS = {1013: "outbox_full", 1008: "flood", 1011: "server_error",
                  TOKEN_EXPIRED: "token_expired"}


class _Close:
    """An outbox entry: close the WebSocket with `code` once what is before it is sent."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason


class FlaskSockConnection(Connection):
    """The hub's side of one flask-sock WebSocket (`ws`: a simple_websocket.Server)."""

    # Not an OwnedConnection: realtime/takeover.py's keep-alive loop writes raw ping
    # frames to those; simple-websocket pings these itself (`ping_interval`).
    transport = "ws-flask-sock"
    __slots__ = ("ws", "outbox_limit", "bucket", "closed", "_outbox", "_writer", "_drained")

    def __init__(self, user: Any, ws, *, outbox_limit: int, rate: float, burst: int,
                 expires_at: float = math.inf) -> None:
        super().__init__(user, expires_at)
        self.ws = ws
        self.outbox_limit = outbox_limit
        self.bucket = TokenBucket(rate, burst)
        self.closed = False
        self._outbox: deque[str | _Close] = deque()
        self._writer = None
        self._drained: gevent.event.Event | None = None   # made by a paced replay only

    # -- what the hub (and ops) call; none of it waits --------------------------------------

    def send_event(self, ev) -> None:
        self._put(ev.frame)

    def send_events(self, events) -> None:
        for ev in events:
            self._put(ev.frame)

    def send_replayed(self, events) -> None:
        # A replay is paced (`pace`), not bounded by the outbox.
        for ev in events:
            self._put(ev.frame, bounded=False)

    def send(self, obj: Any) -> None:
        self._put(dumps(obj))

    def expire(self) -> None:
        self.close(TOKEN_EXPIRED, "token_expired")

    def close(self, code: int, reason: str = "") -> None:
        """Close after the frame being written; what else is queued is dropped."""
        if self.closed:
            return
        CLOSED.labels(_CLOSE_REASONS.get(code, str(code))).inc()
        self.closed = True
        self._outbox.clear()
        self._outbox.append(_Close(code, reason))
        self._start_writer()

    def pace(self, replay: Replay) -> None:
        gevent.spawn(self._pace, replay)

    # -- the outbox ---------------------------------------------------------------------------

    def _put(self, text: str, bounded: bool = True) -> None:
        if self.closed:
            return
        if bounded and len(self._outbox) >= self.outbox_limit:
            self.close(1013, "outbox full, resume with since")
            return
        self._outbox.append(text)
        self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = gevent.spawn(self._drain)

    def _drain(self) -> None:
        # No switch between the last check of `_outbox` and `_writer = None`, so
        # whatever is queued always finds a writer.
        ws = self.ws
        try:
            while self._outbox:
                item = self._outbox.popleft()
                if isinstance(item, _Close):
                    ws.close(item.code, item.reason)
                    break
                ws.send(item)      # wsproto encodes the frame; a full socket waits here
        except (ConnectionClosed, OSError):
            self.closed = True
            self._outbox.clear()
        finally:
            self._writer = None
            if self.closed:
                ws.event.set()     # wake the view's `receive` (simple-websocket does not)
            if self._drained is not None:
                self._drained.set()

    def fail(self) -> None:
        self.close(1011, "internal error")

    # The same pacing as ours: a page each time the outbox has drained (it calls `fail`).
    _pace = WebSocketConnection._pace


class _Setup:
    """What `before_request` took for one connection, given back exactly once."""

    __slots__ = ("me", "services", "admission", "admitted", "counted")

    def __init__(self, me, services, admission: Admission) -> None:
        self.me, self.services, self.admission = me, services, admission
        self.admitted = self.counted = True

    def done_setting_up(self) -> None:
        if self.admitted:
            self.admitted = False
            self.admission.leave()

    def release(self) -> None:
        self.done_setting_up()
        if self.counted:
            self.counted = False
            self.services.presence.disconnect(self.me.id, self.me.role)


def _server_options(settings) -> dict:
    """simple_websocket.Server's keywords (flask-sock passes SOCK_SERVER_OPTIONS on as is).

    Under gunicorn's gevent worker the stdlib is patched when the app is built:
    `threading.Thread` starts a greenlet, `threading.Event` waits on the loop,
    `selectors.DefaultSelector` is gevent's `GeventSelector` (no epoll fd).
    """
    return {
        "thread_class": threading.Thread,
        "event_class": threading.Event,
        "selector_class": selectors.DefaultSelector,
        "ping_interval": settings.realtime.heartbeat_seconds,
        "max_message_size": settings.realtime.max_frame_bytes,
    }


def create_app() -> Flask:
    """Switchboard's app (`app.create_app()`) with `/ws` served by flask-sock."""
    app = switchboard.create_app()
    services = app.extensions["switchboard"]
    settings = services.settings
    _remove_endpoint(app)
    app.config["SOCK_SERVER_OPTIONS"] = _server_options(settings)
    admission = Admission(settings.realtime.max_concurrent_setups, settings.realtime.setup_wait_seconds)

    bp = Blueprint("flask_sock_ws", __name__)
    sock = Sock()

    @bp.before_request
    def _admit() -> None:
        environ = request.environ
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        check_origin(environ.get("HTTP_ORIGIN"), own, settings.allowed_origins)
        me = principal_of(environ, services)
        admission.enter()
        try:
            services.presence.connect(me.id, me.role)   # 429 past the cap: before the 101
        except BaseException:
            admission.leave()
            raise
        g.sb_setup = _Setup(me, services, admission)

    @bp.teardown_request
    def _release(_exc) -> None:
        # A connection that never reached the view (a failed handshake) or left it.
        setup = g.pop("sb_setup", None)
        if setup is not None:
            setup.release()

    @sock.route("/ws", bp=bp)
    def ws_endpoint(ws) -> None:
        setup: _Setup = g.sb_setup
        me = setup.me
        conn = FlaskSockConnection(me, ws, outbox_limit=settings.realtime.outbox_limit,
                                   rate=settings.realtime.client_rate, burst=settings.realtime.client_burst,
                                   expires_at=me.exp)
        services.hub.register(conn)
        try:
            try:
                services.hub.join(conn, f"user:{me.id}", None, None)
            except Exception:  # noqa: BLE001 - the 101 is out: a close frame, not a 503
                log.exception("subscribing %s to its user topic failed", me.id)
                ws.close(1011, "could not subscribe your user topic")
                return
            setup.done_setting_up()
            CONNECTIONS.labels("ws").inc()
            try:
                while not conn.closed:
                    text = ws.receive()        # raises ConnectionClosed at the end
                    if text is None:
                        continue
                    if not conn.bucket.take():
                        conn.close(1008, "too many frames")
                    elif isinstance(text, bytes):
                        conn.send({"event": "error", "error": {
                            "code": "binary_not_supported", "message": "send JSON text frames"}})
                    else:
                        ops.handle(services, conn, text)
            finally:
                CONNECTIONS.labels("ws").dec()
        finally:
            conn.closed = True
            services.hub.drop(conn)
            setup.release()

    app.register_blueprint(bp)
    return app


def _remove_endpoint(app: Flask) -> None:
    """Take our `/ws` out of the streams served beneath Flask (`app.wsgi_app`'s chain)."""
    layer = app.wsgi_app
    while layer is not None and not isinstance(layer, Streams):
        layer = getattr(layer, "app", None)
    if layer is None:
        raise RuntimeError("Streams not found in app.wsgi_app")
    del layer.endpoints["/ws"]


__all__ = ["FlaskSockConnection", "create_app"]
