"""`GET /events`: Server-Sent Events, served beneath Flask (realtime/takeover.py).

`?topics=a,b` names what the stream follows; `Last-Event-ID` (what
EventSource sends by itself when it reconnects; `?last_event_id=` for
clients that cannot set it) resumes every topic from the stream's cursor,
and a topic that cannot be recovered gets a `stream:reset` record instead of
a partial replay (PROTOCOL.md section 3).
"""
from __future__ import annotations

import time
from urllib.parse import parse_qs

from broadcast.events import BadStreamCursor, decode_cursor, reset_event
from broadcast.poll import PollConnection
from broadcast.sse import SseConnection, head
from realtime.admission import Admission, authorize_all, caller_of, topics_arg
from realtime.takeover import closer, open_owned
from refusals import Refusal


def positions_of(cursor: str | None) -> dict[str, str]:
    """The topic -> cursor map of a stream cursor; 400 for one this server did not issue."""
    try:
        return decode_cursor(cursor) if cursor else {}
    except BadStreamCursor as exc:
        raise Refusal(400, "invalid_cursor", str(exc)) from None


def join_all(hub, conn: SseConnection | PollConnection, topics: list[str],
             positions: dict[str, str], resume: bool) -> None:
    """Join every topic, each from its position; the stream's cursors start where the
    replay does. Resuming, a topic that cannot be recovered is told with `stream:reset`."""
    cursors = conn.cursors
    for topic in topics:
        since = positions.get(topic)

        def ack(recovered: bool, cursor: str, topic: str = topic, since: str | None = since) -> None:
            cursors[topic] = since if recovered and since else cursor
            if resume and not recovered:
                conn.send_event(reset_event(topic, cursor, int(time.time() * 1000)))

        hub.join(conn, topic, since, ack)


class SseEndpoint:
    def __init__(self, services, admission: Admission) -> None:
        self.services, self.admission = services, admission
        self._closed = closer(services)

    def wants(self, environ: dict) -> bool:
        return environ.get("REQUEST_METHOD") == "GET"

    def open(self, environ: dict) -> tuple[SseConnection, bytes]:
        services = self.services
        me = caller_of(environ, services)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        topics = topics_arg((query.get("topics") or [""])[0])
        last = environ.get("HTTP_LAST_EVENT_ID") or (query.get("last_event_id") or [None])[0]
        authorize_all(services, me, topics)
        positions = positions_of(last)
        chunked = environ.get("SERVER_PROTOCOL") != "HTTP/1.0"

        def make(sock) -> SseConnection:
            return SseConnection(me, sock, outbox_limit=services.settings.realtime.outbox_limit,
                                 expires_at=me.exp, chunked=chunked, on_close=self._closed)

        conn = open_owned(services, self.admission, me, environ, make,
                          lambda c: join_all(services.hub, c, topics, positions,
                                             resume=bool(last)))
        return conn, head(chunked)
