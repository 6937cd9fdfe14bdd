"""`GET /ws`: the WebSocket endpoint, served beneath Flask.

A WebSocket upgrade of `/ws` never becomes a Flask request: this WSGI
middleware checks the origin, the token and the handshake from gunicorn's
environ, counts the connection (presence and the per-user cap, batched with
the connects around it), takes the socket over from gunicorn and writes the
101 itself. Then the request ends: its greenlet, environ and stack go back
to gunicorn, and the connection lives on as a socket, a read watcher and a
`WebSocketConnection` (broadcast/ws.py). Anything else (a plain GET of
`/ws`, every other path) goes on to the app.

Until the socket is taken over a refusal is a plain HTTP answer (the
contract's JSON error); after it, nothing but WebSocket frames reaches it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import _socket
import threading
import time

import gevent.socket

import outages
from broadcast.metrics import CONNECTIONS
from broadcast.ws import PING_FRAME, WebSocketConnection
from realtime import ops
from realtime.admission import Admission, check_origin, principal_of
from refusals import Refusal

log = logging.getLogger(__name__)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_STATUS = {400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden",
           426: "426 Upgrade Required", 429: "429 Too Many Requests", 501: "501 Not Implemented",
           503: "503 Service Unavailable"}


def accept_key(key: str) -> bytes:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest())


def handshake_response(key: str) -> bytes:
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")


def _check_key(environ: dict) -> str:
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        raise Refusal(426, "unsupported_version", "this server speaks WebSocket version 13",
                      headers={"Sec-WebSocket-Version": "13"})
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
    try:
        if len(base64.b64decode(key, validate=True)) == 16:
            return key
    except (binascii.Error, ValueError):
        pass
    raise Refusal(400, "bad_handshake", "Sec-WebSocket-Key must be 16 bytes in base64")


def _answer(start_response, exc: Refusal) -> list[bytes]:
    body = json.dumps(exc.body()).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
               *exc.headers.items()]
    start_response(_STATUS.get(exc.status, f"{exc.status} Error"), headers)
    return [body]


def _refusal_of(exc: Exception) -> Refusal:
    if isinstance(exc, Refusal):
        return exc
    name = outages.dependency_down(exc)
    if name is not None:
        return Refusal(503, "unavailable", outages.outage_message(name),
                       headers={"Retry-After": str(outages.RETRY_AFTER_SECONDS)})
    log.error("setting up a WebSocket failed", exc_info=exc)
    return Refusal(500, "internal_error", "internal error")


class WebSocketEndpoint:
    """WSGI middleware: WebSocket upgrades of `/ws` are served here, the rest by `app`."""

    def __init__(self, app, services) -> None:
        self.app, self.services = app, services
        settings = services.settings
        self.admission = Admission(settings.max_concurrent_setups, settings.setup_wait_seconds)

    def __call__(self, environ: dict, start_response):
        if environ.get("PATH_INFO") != "/ws" or environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return self.app(environ, start_response)
        try:
            conn, key = self._admit(environ)
        except Exception as exc:  # noqa: BLE001 - still HTTP: every refusal is the contract's JSON
            return _answer(start_response, _refusal_of(exc))
        conn.start(handshake_response(key))
        # gunicorn's signal that the socket was taken over (as flask-sock gives it): the
        # request ends here, and closing gunicorn's (detached) socket object does nothing.
        raise StopIteration()

    def _admit(self, environ: dict) -> tuple[WebSocketConnection, str]:
        services, settings = self.services, self.services.settings
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        check_origin(environ.get("HTTP_ORIGIN"), own, settings.allowed_origins)
        me = principal_of(environ, services)
        key = _check_key(environ)
        theirs = environ.get("gunicorn.socket")
        if type(theirs) is not gevent.socket.socket:
            raise Refusal(501, "websocket_unsupported",
                          "serve /ws with gunicorn's gevent worker (make run / make up), TLS in front")
        self.admission.enter()
        try:
            services.presence.connect(me.id, me.role)   # 429 past the cap: before the socket is ours
            try:
                conn = self._take_over(theirs, me)
            except BaseException:
                services.presence.disconnect(me.id, me.role)
                raise
        finally:
            self.admission.leave()
        return conn, key

    def _take_over(self, theirs, me) -> WebSocketConnection:
        services, settings = self.services, self.services.settings
        sock = _raw_socket(theirs)
        conn = WebSocketConnection(
            me, sock, outbox_limit=settings.outbox_limit, max_frame_bytes=settings.max_frame_bytes,
            rate=settings.client_rate, burst=settings.client_burst, expires_at=me.exp,
            on_text=lambda c, text: ops.handle(services, c, text), on_close=self._closed)
        services.hub.register(conn)
        try:
            services.hub.join(conn, f"user:{me.id}", None, None)
        except BaseException:
            services.hub.drop(conn)
            _refuse_raw(sock, Refusal(503, "unavailable", "could not subscribe your user topic",
                                      headers={"Retry-After": "2"}))
            raise StopIteration() from None
        CONNECTIONS.labels("ws").inc()
        return conn

    def _closed(self, conn: WebSocketConnection) -> None:
        try:
            self.services.hub.drop(conn)
        finally:
            CONNECTIONS.labels("ws").dec()
            self.services.presence.disconnect(conn.user.id, conn.user.role)


def _raw_socket(theirs):
    """The socket gunicorn accepted, as a bare non-blocking OS socket of ours.

    Detached, not dup()ed: one file descriptor per connection. `_socket.socket`,
    not `socket.socket`, which gevent's patching makes its own wrapper: the
    loop's watchers do the waiting here.
    """
    sock = _socket.socket(fileno=theirs.detach())
    sock.setblocking(False)
    return sock


def _refuse_raw(sock, exc: Refusal) -> None:
    """An HTTP error written by hand: the socket is ours, and no 101 was sent."""
    body = json.dumps(exc.body()).encode()
    head = (f"HTTP/1.1 {_STATUS.get(exc.status, exc.status)}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in exc.headers.items()) + "\r\n")
    try:
        sock.send(head.encode() + body)
    except OSError:
        pass
    sock.close()


def ping_round(hub, interval: float, chunk: int = 500) -> None:
    """Ping every WebSocket once; end one that has not been heard from in 2.5 intervals.

    The loop is given back between chunks: a process holding 16,000 connections
    spent half a second of it in one pass (py-spy, BENCHMARKS.md issue 11), and
    accepts and deliveries waited for it.
    """
    stale = time.monotonic() - 2.5 * interval
    for i, conn in enumerate(tuple(hub.connections)):
        if i and i % chunk == 0:
            time.sleep(0)
        if conn.transport != "ws":
            continue
        if conn.last_seen < stale:
            conn.abort()
        else:
            conn.write(PING_FRAME)


def keep_alive(hub, interval: float) -> threading.Thread:
    """`ping_round` every `interval`: one loop for all connections, no timer per connection."""
    def loop() -> None:
        while True:
            time.sleep(interval)
            ping_round(hub, interval)
    thread = threading.Thread(target=loop, name="ws-keep-alive", daemon=True)
    thread.start()
    return thread
