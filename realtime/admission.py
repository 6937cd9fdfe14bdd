"""Who gets a real-time connection, and how many are being set up at once.

Shared by `/ws` and `/events` (realtime/websocket.py, realtime/sse.py: before
any Flask request exists) and by `/poll` (realtime/streams.py): the `Origin`
check, the token, the topics asked for, and the bound on connections being
set up together.
"""
from __future__ import annotations

from urllib.parse import parse_qs

import gevent.lock

from api.auth import Principal, decode_token
from realtime.topics import TopicError, authorize
from refusals import Refusal

MAX_TOPICS = 50


def check_origin(origin: str | None, own: str, allowed: tuple[str, ...]) -> None:
    """A browser's page may connect only from our own origin or an allowed one.

    A request without `Origin` is not a browser's: there is nothing to protect
    from cross-site use (PROTOCOL.md section 1).
    """
    if origin is not None and origin != own and origin not in allowed:
        raise Refusal(403, "origin_not_allowed", f"origin {origin} is not allowed")


def token_of(environ: dict) -> str | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    query = environ.get("QUERY_STRING", "")
    # A JWT is base64url: nothing in it is escaped, so the common query
    # (`token=...` alone) needs no parsing; anything else gets parse_qs.
    if query.startswith("token=") and "&" not in query and "%" not in query and "+" not in query:
        return query[6:] or None
    return (parse_qs(query).get("token") or [None])[0]


def principal_of(environ: dict, services) -> Principal:
    """The caller of a real-time endpoint; their user row is made soon (PROTOCOL.md section 2)."""
    token = token_of(environ)
    if not token:
        raise Refusal(401, "missing_token", "send ?token=<jwt> or Authorization: Bearer <jwt>")
    me = decode_token(token, services.settings.jwt_secret)
    services.users.ensure_later(me)
    return me


def caller_of(environ: dict, services) -> Principal:
    """Who opens a real-time connection (`/ws`, `/events`, `/poll`): the origin allowed, the token."""
    own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
    check_origin(environ.get("HTTP_ORIGIN"), own, services.settings.allowed_origins)
    return principal_of(environ, services)


def topics_arg(raw: str) -> list[str]:
    topics = [t for t in raw.split(",") if t]
    if not topics or len(topics) > MAX_TOPICS:
        raise Refusal(400, "invalid_topics", f"give 1 to {MAX_TOPICS} comma-separated topics in ?topics=")
    return list(dict.fromkeys(topics))


def authorize_all(services, me: Principal, topics: list[str]) -> None:
    with services.session() as session:
        for topic in topics:
            authorize(session, me, topic)


class Admission:
    """At most `limit` connections being set up at once in this process.

    Under a burst of connects, admitting all of them at once starves the
    greenlets that finish them (the Redis listener confirming subscriptions
    among them) and every setup times out together; admitted a bounded number
    at a time, the process finishes what it starts and the rest wait.

    gevent's own semaphore: the standard library's, patched, is a Condition
    around a Lock in Python (a tenth of a connect's CPU, measured).
    """

    def __init__(self, limit: int, wait_seconds: float) -> None:
        self._slots = gevent.lock.BoundedSemaphore(limit)
        self.wait_seconds = wait_seconds

    def enter(self) -> None:
        # A free slot is taken without a timer; only a wait arms one.
        if not self._slots.acquire(blocking=False) and \
                not self._slots.acquire(timeout=self.wait_seconds):
            raise Refusal(503, "busy", "too many connections being set up; retry with backoff",
                          headers={"Retry-After": "2"})

    def leave(self) -> None:
        self._slots.release()


__all__ = ["Admission", "TopicError", "authorize_all", "caller_of", "check_origin", "principal_of",
           "topics_arg"]
