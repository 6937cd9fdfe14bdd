"""Streams served beneath Flask: `/ws` upgrades and `GET /events` take their socket over.

A connection that lives for minutes must not hold a request for minutes: the
Flask request, the WSGI environ, gunicorn's request and a greenlet with its
saved stack (BENCHMARKS.md, issue 11). So these two never become Flask
requests. `Streams` is WSGI middleware in front of the app: it hands the
request to its endpoint (realtime/websocket.py, realtime/sse.py), which
checks it from gunicorn's environ; `open_owned` then counts the connection
(the bound on setups at once, presence and the per-user cap), takes the
socket over from gunicorn and joins the connection's topics, and the
endpoint's response head is written. Then the request ends: its greenlet and
environ go back to gunicorn, and the connection lives on as a socket, a read
watcher and an `OwnedConnection` (broadcast/owned.py).

Until the socket is taken over a refusal is a plain HTTP answer (the
contract's JSON error); after it, only what the transport writes reaches it.
"""
from __future__ import annotations

import json
import logging
import _socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

import gevent.socket

import outages
from broadcast.metrics import CONNECTIONS
from broadcast.owned import OwnedConnection
from realtime.admission import Admission
from refusals import Refusal

log = logging.getLogger(__name__)


class Endpoint(Protocol):
    def wants(self, environ: dict) -> bool:
        """Whether this request is the endpoint's to serve (else it goes on to Flask)."""

    def open(self, environ: dict) -> tuple[OwnedConnection, bytes]:
        """The connection, its socket taken over, and the response head to start it with;
        raises what refuses the request."""


class Streams:
    """WSGI middleware: requests an endpoint `wants` are served by it, the rest by `app`."""

    def __init__(self, app: Callable, endpoints: dict[str, Endpoint]) -> None:
        self.app, self.endpoints = app, endpoints

    def __call__(self, environ: dict, start_response: Callable):
        endpoint = self.endpoints.get(environ.get("PATH_INFO", ""))
        if endpoint is None or not endpoint.wants(environ):
            return self.app(environ, start_response)
        try:
            conn, head = endpoint.open(environ)
        except StopIteration:
            raise   # the socket was taken over and answered already
        except Exception as exc:  # noqa: BLE001 - still HTTP: every refusal is the contract's JSON
            return answer(start_response, refusal_of(exc))
        conn.start(head)
        # gunicorn's signal that the socket was taken over (as flask-sock gives it): the
        # request ends here, and closing gunicorn's (detached) socket object does nothing.
        raise StopIteration()


def open_owned(services, admission: Admission, me, environ: dict,
               make: Callable[[Any], OwnedConnection],
               join: Callable[[OwnedConnection], None]) -> OwnedConnection:
    """Count `me`'s connection, take the socket over as `make(sock)`, then `join(conn)` its
    topics. A refusal before the socket is ours raises; one after it is written on the
    socket and ends the request (StopIteration)."""
    theirs = environ.get("gunicorn.socket")
    if type(theirs) is not gevent.socket.socket:
        raise Refusal(501, "streaming_unsupported",
                      "serve /ws and /events with gunicorn's gevent worker (make run / make up), "
                      "TLS in front")
    admission.enter()
    try:
        services.presence.connect(me.id, me.role)   # 429 past the cap: before the socket is ours
        try:
            sock = _raw_socket(theirs)
            conn = make(sock)
            services.hub.register(conn)
            try:
                join(conn)
            except BaseException as exc:
                services.hub.drop(conn)
                conn.discard()   # a replay paced during the joins must not wait on it for ever
                if not isinstance(exc, Exception):   # the greenlet is being killed
                    sock.close()
                    raise
                _refuse_raw(sock, refusal_of(exc))   # answered on the socket, which is ours now
                raise StopIteration() from None
        except BaseException:
            services.presence.disconnect(me.id, me.role)
            raise
    finally:
        admission.leave()
    CONNECTIONS.labels(conn.transport).inc()
    return conn


def closer(services) -> Callable[[OwnedConnection], None]:
    """What runs once an owned connection has ended: the undoing of `open_owned`."""
    def closed(conn: OwnedConnection) -> None:
        try:
            services.hub.drop(conn)
        finally:
            CONNECTIONS.labels(conn.transport).dec()
            services.presence.disconnect(conn.user.id, conn.user.role)
    return closed


def answer(start_response: Callable, exc: Refusal) -> list[bytes]:
    status, headers, body = _http(exc)
    start_response(status, headers)
    return [body]


def _http(exc: Refusal) -> tuple[str, list[tuple[str, str]], bytes]:
    """The contract's JSON error as a status line, headers and body."""
    body = json.dumps(exc.body()).encode()
    return (f"{exc.status} {_phrase(exc.status)}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
             *exc.headers.items()], body)


def refusal_of(exc: Exception) -> Refusal:
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, TimeoutError):   # a topic's subscription was not confirmed in time
        return Refusal(503, "unavailable", "could not subscribe in time; retry",
                       headers={"Retry-After": "2"})
    name = outages.dependency_down(exc)
    if name is not None:
        return Refusal(503, "unavailable", outages.outage_message(name),
                       headers={"Retry-After": str(outages.RETRY_AFTER_SECONDS)})
    log.error("setting up a stream failed", exc_info=exc)
    return Refusal(500, "internal_error", "internal error")


def _raw_socket(theirs):
    """The socket gunicorn accepted, as a bare non-blocking OS socket of ours.

    Detached, not dup()ed: one file descriptor per connection. `_socket.socket`,
    not `socket.socket`, which gevent's patching makes its own wrapper: the
    loop's watchers do the waiting here.
    """
    sock = _socket.socket(fileno=theirs.detach())
    sock.setblocking(False)
    return sock


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _refuse_raw(sock, exc: Refusal) -> None:
    """A refusal written by hand: the socket is ours, and no response head was sent."""
    status, headers, body = _http(exc)
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "Connection: close\r\n\r\n"
    try:
        sock.send(head.encode("latin-1") + body)
    except OSError:
        pass
    sock.close()


def keep_alive_round(hub, interval: float, chunk: int = 500) -> None:
    """Every owned connection shows its client it is alive once; a WebSocket not heard from
    in 2.5 intervals is ended.

    The loop is given back between chunks: a process holding 16,000 connections
    spent half a second of it in one pass (py-spy, BENCHMARKS.md issue 11), and
    accepts and deliveries waited for it.
    """
    stale = time.monotonic() - 2.5 * interval
    for i, conn in enumerate(tuple(hub.connections)):
        if i and i % chunk == 0:
            time.sleep(0)
        if isinstance(conn, OwnedConnection):
            conn.keep_alive(stale)


def keep_alive(hub, interval: float) -> threading.Thread:
    """`keep_alive_round` every `interval`: one loop for all connections, no timer per connection."""
    def loop() -> None:
        while True:
            time.sleep(interval)
            keep_alive_round(hub, interval)
    thread = threading.Thread(target=loop, name="keep-alive", daemon=True)
    thread.start()
    return thread
