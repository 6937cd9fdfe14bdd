"""`/poll` (long polling), and what Flask answers at `/ws` and `/events`.

A long poll is a Flask view that answers once. A WebSocket upgrade of `/ws`
and a `GET /events` never reach Flask (realtime/takeover.py); the views here
answer anything else sent there, and document both endpoints.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, request

from broadcast.events import encode_cursor
from broadcast.metrics import CONNECTIONS
from broadcast.poll import PollConnection
from realtime.admission import authorize_all, caller_of, topics_arg
from realtime.sse import join_all, positions_of
from refusals import Refusal
from services import current_services

bp = Blueprint("realtime", __name__)


@bp.route("/ws")
def websocket():
    """WebSocket: subscribe, unsubscribe, emit, ping, refresh (PROTOCOL.md section 3)."""
    raise Refusal(400, "websocket_expected", "this endpoint speaks WebSocket only")


@bp.route("/events", methods=["GET"])
def events():
    """Server-Sent Events for ?topics=a,b; resumes from Last-Event-ID."""
    # Served beneath Flask; what reaches this view is a HEAD.
    raise Refusal(400, "stream_expected", "GET this endpoint for an event stream")


@bp.route("/poll")
def poll():
    """Long polling: events after ?cursor= for ?topics=, waiting up to 25 s."""
    services = current_services()
    me = caller_of(request.environ, services)
    topics = topics_arg(request.args.get("topics", ""))
    authorize_all(services, me, topics)
    cursor = request.args.get("cursor")
    positions = positions_of(cursor)
    if not cursor:
        now = {t: services.bus.latest(t) for t in topics}
        return Response(json.dumps({"events": [], "cursor": encode_cursor(now), "reset": []}),
                        mimetype="application/json")
    conn = PollConnection(me, services.settings.realtime.outbox_limit, me.exp)
    services.hub.register(conn)
    CONNECTIONS.labels("poll").inc()
    try:
        join_all(services.hub, conn, topics, positions, resume=True)
        # A replay longer than a page answers with its first page at once: the
        # next poll, from the cursor this one returns, reads on.
        if not conn.queue and not conn.replays:
            conn.wakeup.wait(services.settings.realtime.poll_timeout_seconds)
        body = conn.body(conn.take())
    finally:
        services.hub.drop(conn)
        CONNECTIONS.labels("poll").dec()
    return Response(body, mimetype="application/json")
