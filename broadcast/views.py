"""`/ws`, `/events` and `/poll`: the three ways a client receives events."""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from typing import Any

from flask import Blueprint, Response, current_app, request, stream_with_context

import outages
from api.auth import authenticate, decode_token
from actions.errors import DomainError
from api.errors import ApiError
from broadcast.commands import CommandError, run_command
from broadcast.events import BadCursor, reset_event
from broadcast.frames import FrameError, parse_op
from broadcast.metrics import CLOSED, CONNECTIONS
from broadcast.queued import BadStreamCursor, QueuedConnection, decode_cursor, encode_cursor
from broadcast.topics import TopicError, authorize, needs_lookup, parse_topic
from broadcast.ws import WebSocketConnection, raw_socket
from services import current_services

log = logging.getLogger(__name__)
bp = Blueprint("realtime", __name__)


def check_origin() -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser: nothing to protect from cross-site use
    own = request.host_url.rstrip("/")
    if origin != own and origin not in current_app.config["SB_SETTINGS"].allowed_origins:
        raise ApiError(403, "origin_not_allowed", f"origin {origin} is not allowed")


def _topics_arg() -> list[str]:
    topics = [t for t in request.args.get("topics", "").split(",") if t]
    if not topics or len(topics) > 50:
        raise ApiError(400, "invalid_topics", "give 1 to 50 comma-separated topics in ?topics=")
    return list(dict.fromkeys(topics))


def _authorize_all(me, topics: list[str]) -> None:
    with current_services().session() as session:
        for topic in topics:
            try:
                authorize(session, me, topic)
            except TopicError as exc:
                raise ApiError(exc.status, exc.code, exc.message) from None


_open_per_user: Counter[str] = Counter()


def open_connections_per_user() -> dict[str, int]:
    """WebSocket and SSE connections open in this process, per user."""
    return dict(_open_per_user)

_setups: threading.BoundedSemaphore | None = None


@contextmanager
def _admitted(settings):
    """At most `max_concurrent_setups` connections being set up at once.

    Under a burst of connects, admitting all of them at once starves the
    greenlets that finish them (the Redis listener confirming subscriptions
    among them) and every setup times out together; admitted a bounded number
    at a time, the process finishes what it starts and the rest wait.
    """
    global _setups
    if _setups is None:
        _setups = threading.BoundedSemaphore(settings.max_concurrent_setups)
    if not _setups.acquire(timeout=settings.setup_wait_seconds):
        raise ApiError(503, "busy", "too many connections being set up; retry with backoff",
                       headers={"Retry-After": "2"})
    try:
        yield
    finally:
        _setups.release()


class _Presence:
    """Counts a WebSocket or SSE connection for as long as it is open.

    The count is the presence store's, over every web process, so it is also
    where the per-user cap is kept: a user holding `max_connections_per_user`
    anywhere gets 429 here, whichever process they reach.
    """

    def __init__(self, services, me) -> None:
        self.services, self.me = services, me

    def __enter__(self):
        limit = self.services.settings.max_connections_per_user
        held = self.services.presence.connect(self.me.id, limit)
        if not held:
            raise ApiError(429, "too_many_connections",
                           f"at most {limit} open connections per user", headers={"Retry-After": "5"})
        _open_per_user[self.me.id] += 1
        if held == 1:
            self.services.announce(self.me.id, True)
        return self

    def __exit__(self, *exc):
        _open_per_user[self.me.id] -= 1
        if _open_per_user[self.me.id] <= 0:
            del _open_per_user[self.me.id]
        if self.services.presence.disconnect(self.me.id):
            self.services.announce(self.me.id, False)


# WebSocket

@bp.route("/ws", websocket=True)
def websocket():
    """WebSocket: subscribe, unsubscribe, emit, ping (PROTOCOL.md section 3)."""
    check_origin()
    me = authenticate(allow_query=True, realtime=True)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(400, "websocket_expected", "this endpoint speaks WebSocket only")
    services = current_services()
    sock = raw_socket(request.environ)
    if sock is None or "gunicorn.socket" not in request.environ:
        raise ApiError(501, "websocket_unsupported", "run under gunicorn (make run / make up)")
    settings = services.settings
    conn = WebSocketConnection(me, sock, outbox_limit=settings.outbox_limit,
                               max_frame_bytes=settings.max_frame_bytes,
                               rate=settings.client_rate, burst=settings.client_burst,
                               expires_at=me.exp)
    services.hub.register(conn)
    CONNECTIONS.labels("ws").inc()
    try:
        with ExitStack() as stack:
            with _admitted(settings):
                stack.enter_context(_Presence(services, me))
                services.hub.join(conn, f"user:{me.id}", None, None)
            conn.serve(request.environ, _handle_frame)
    except Exception:
        if not conn.upgraded:
            raise  # still HTTP: answered as any other request's error
        # Past the 101 the socket speaks WebSocket: a 500 page must not be written into it.
        log.exception("WebSocket connection of %s failed after the upgrade", me.id)
        conn.fail()
    finally:
        services.hub.drop(conn)
        CONNECTIONS.labels("ws").dec()

    class _Handled(Response):
        def __call__(self, *args, **kwargs):
            # gunicorn's signal that the socket was taken over (as flask-sock does)
            raise StopIteration()

    return _Handled()


def _fail(conn: WebSocketConnection, ref: Any, code: str, message: str) -> None:
    error = {"code": code, "message": message}
    if ref is not None:
        conn.send({"event": "ack", "ref": ref, "ok": False, "error": error})
    else:
        conn.send({"event": "error", "error": error})


def _handle_frame(conn: WebSocketConnection, text: str) -> None:
    try:
        op = parse_op(text)
    except FrameError as exc:
        _fail(conn, exc.ref, exc.code, exc.message)
        return
    ref = op.ref

    def ok(data: Any = None) -> None:
        if ref is not None:
            conn.send({"event": "ack", "ref": ref, "ok": True, "data": data if data is not None else {}})

    services = current_services()
    try:
        if op.op == "subscribe":
            topic = op.get("topic")
            if needs_lookup(conn.user, topic):
                with services.session() as session:
                    authorize(session, conn.user, topic)
            else:
                authorize(None, conn.user, topic)
            services.hub.join(conn, topic, op.get("since"),
                              lambda recovered, cursor: ok({"recovered": recovered, "cursor": cursor}))
        elif op.op == "unsubscribe":
            topic = op.get("topic")
            parse_topic(topic)
            if topic == f"user:{conn.user.id}":
                raise CommandError("cannot_unsubscribe", "your own user topic stays subscribed")
            services.hub.leave(conn, topic)
            ok()
        elif op.op == "emit":
            ok(run_command(conn.user, op.get("event"), op.get("data")))
        elif op.op == "refresh":
            ok({"exp": _refresh(services, conn, op.get("token"))})
        elif op.op == "ping":
            if ref is not None:
                ok({"ts": int(time.time() * 1000)})
            else:
                conn.send({"event": "pong", "data": {"ts": int(time.time() * 1000)}})
    except (TopicError, CommandError) as exc:
        _fail(conn, ref, exc.code, exc.message)
    except BadCursor as exc:
        _fail(conn, ref, "invalid_cursor", str(exc))
    except (ApiError, DomainError) as exc:
        _fail(conn, ref, exc.code, exc.message)
    except outages.TYPES as exc:
        name = outages.dependency_down(exc)
        log.warning("ws op %s: %s unavailable: %s", op.op, name, exc)
        _fail(conn, ref, "unavailable", outages.outage_message(name))
    except Exception:  # noqa: BLE001 - one bad command must not end the connection
        log.exception("ws op %s failed", op.op)
        _fail(conn, ref, "internal_error", "internal error")


def _refresh(services, conn: WebSocketConnection, token: str) -> int:
    """Extend `conn` to the new token's `exp`: the same user in the same role only."""
    new = decode_token(token, services.settings.jwt_secret)
    if (new.id, new.role) != (conn.user.id, conn.user.role):
        raise CommandError("token_mismatch", "a refresh token must be for the same sub and role")
    services.hub.extend(conn, new.exp)
    return int(new.exp)


# Server-Sent Events

@bp.route("/events")
def events():
    """Server-Sent Events for ?topics=a,b; resumes from Last-Event-ID."""
    check_origin()
    me = authenticate(allow_query=True, realtime=True)
    topics = _topics_arg()
    _authorize_all(me, topics)
    last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    try:
        positions = decode_cursor(last) if last else {}
    except BadStreamCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from None
    services = current_services()
    conn = QueuedConnection(me, "sse", services.settings.outbox_limit, me.exp)
    presence = _Presence(services, me).__enter__()   # 429 here, before the stream starts
    services.hub.register(conn)
    CONNECTIONS.labels("sse").inc()

    def close() -> None:
        services.hub.drop(conn)
        CONNECTIONS.labels("sse").dec()
        presence.__exit__(None, None, None)

    try:
        _join_all(services, conn, topics, positions, resume=bool(last))
    except BaseException:
        close()
        raise
    heartbeat = services.settings.heartbeat_seconds

    def stream():
        # A first chunk at once, so proxies and browsers see the stream open.
        yield ": open\nretry: 2000\n\n"
        while True:
            if conn.replays:
                conn.step_replay()   # paced: the next page once the last chunk was written
            elif not conn.wakeup.wait(heartbeat):
                yield ": heartbeat\n\n"
                continue
            if conn.expired:
                CLOSED.labels("token_expired").inc()
                yield ": token expired\n\n"
                return  # the client reconnects with a fresh token and Last-Event-ID
            batch = conn.take()
            if batch:
                yield "".join(conn.sse_chunk(ev) for ev in batch)
            if conn.overflowed:
                CLOSED.labels("sse_overflow").inc()
                return  # the browser reconnects with Last-Event-ID

    response = Response(stream_with_context(stream()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    # Called when the server is done with the response, however it ended.
    response.call_on_close(close)
    return response


def _join_all(services, conn: QueuedConnection, topics: list[str], positions: dict[str, str],
              resume: bool) -> None:
    for topic in topics:
        since = positions.get(topic)

        def ack(recovered: bool, cursor: str, topic: str = topic, since: str | None = since) -> None:
            # A replay moves the stream cursor on event by event, from `since`.
            conn.cursors[topic] = since if recovered and since else cursor
            if resume and not recovered:
                conn.send_event(reset_event(topic, cursor, int(time.time() * 1000)))

        services.hub.join(conn, topic, since, ack)


# Long polling

@bp.route("/poll")
def poll():
    """Long polling: events after ?cursor= for ?topics=, waiting up to 25 s."""
    check_origin()
    me = authenticate(allow_query=True, realtime=True)
    topics = _topics_arg()
    _authorize_all(me, topics)
    services = current_services()
    cursor = request.args.get("cursor")
    try:
        positions = decode_cursor(cursor) if cursor else {}
    except BadStreamCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from None
    if not cursor:
        now = {t: services.bus.latest(t) for t in topics}
        return Response(json.dumps({"events": [], "cursor": encode_cursor(now), "reset": []}),
                        mimetype="application/json")
    conn = QueuedConnection(me, "poll", services.settings.outbox_limit, me.exp)
    services.hub.register(conn)
    CONNECTIONS.labels("poll").inc()
    try:
        _join_all(services, conn, topics, positions, resume=True)
        # A replay longer than a page answers with its first page at once: the
        # next poll, from the cursor this one returns, reads on.
        if not conn.queue and not conn.replays:
            conn.wakeup.wait(services.settings.poll_timeout_seconds)
        body = conn.poll_body(conn.take())
    finally:
        services.hub.drop(conn)
        CONNECTIONS.labels("poll").dec()
    return Response(body, mimetype="application/json")
