"""`/events` (Server-Sent Events) and `/poll` (long polling), and `/ws` for what is not an upgrade.

Both stream transports are Flask views: an SSE response is a generator the
request's greenlet writes out (so a replay is paced by the client's reading,
a page between writes), and a long poll answers once. A WebSocket upgrade
of `/ws` never reaches Flask (realtime/websocket.py); this module's `/ws`
view answers anything else there, and documents the endpoint.
"""
from __future__ import annotations

import json
import time

from flask import Blueprint, Response, request, stream_with_context

from broadcast.events import reset_event
from broadcast.metrics import CLOSED, CONNECTIONS
from broadcast.queued import BadStreamCursor, QueuedConnection, decode_cursor, encode_cursor
from realtime.admission import authorize_all, check_origin, principal_of, topics_arg
from refusals import Refusal
from services import current_services

bp = Blueprint("realtime", __name__)


def _subscriber(services):
    """The caller of a stream endpoint and the topics they may follow (?topics=a,b)."""
    check_origin(request.headers.get("Origin"), request.host_url.rstrip("/"),
                 services.settings.allowed_origins)
    me = principal_of(request.environ, services)
    topics = topics_arg(request.args.get("topics", ""))
    authorize_all(services, me, topics)
    return me, topics


def _positions(cursor: str | None) -> dict[str, str]:
    try:
        return decode_cursor(cursor) if cursor else {}
    except BadStreamCursor as exc:
        raise Refusal(400, "invalid_cursor", str(exc)) from None


@bp.route("/ws")
def websocket():
    """WebSocket: subscribe, unsubscribe, emit, ping, refresh (PROTOCOL.md section 3)."""
    raise Refusal(400, "websocket_expected", "this endpoint speaks WebSocket only")


@bp.route("/events")
def events():
    """Server-Sent Events for ?topics=a,b; resumes from Last-Event-ID."""
    services = current_services()
    me, topics = _subscriber(services)
    last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    positions = _positions(last)
    conn = QueuedConnection(me, "sse", services.settings.outbox_limit, me.exp)
    services.presence.connect(me.id, me.role)   # 429 here, before the stream starts
    services.hub.register(conn)
    CONNECTIONS.labels("sse").inc()

    def close() -> None:
        services.hub.drop(conn)
        CONNECTIONS.labels("sse").dec()
        services.presence.disconnect(me.id, me.role)

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


@bp.route("/poll")
def poll():
    """Long polling: events after ?cursor= for ?topics=, waiting up to 25 s."""
    services = current_services()
    me, topics = _subscriber(services)
    cursor = request.args.get("cursor")
    positions = _positions(cursor)
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
