"""Which dependency an exception says is down: Redis, the broker or the database.

A dependency outage is not a bug in the request: it is answered 503 with
`Retry-After` (api/errors.py) or a failed ack `unavailable` on a WebSocket,
and `/readyz` says which part is down. The processes reconnect by themselves
once it is back (redis-py and SQLAlchemy's pool make new connections; the
bus's listener resubscribes and replays).
"""
from __future__ import annotations

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

RETRY_AFTER_SECONDS = 5

_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (redis.exceptions.ConnectionError, "redis"),
    (redis.exceptions.TimeoutError, "redis"),
    (redis.exceptions.BusyLoadingError, "redis"),
    # A cluster mid-failover: a slot without a live master, or keys being moved.
    (redis.exceptions.ClusterError, "redis"),
    (redis.exceptions.TryAgainError, "redis"),
    (redis.exceptions.SlotNotCoveredError, "redis"),
    (kombu.exceptions.OperationalError, "broker"),
    (sqlalchemy.exc.OperationalError, "database"),
    (sqlalchemy.exc.InterfaceError, "database"),
)
TYPES = tuple(kind for kind, _ in _KINDS)


def dependency_down(exc: BaseException) -> str | None:
    """The name of the dependency `exc` reports unreachable, or None for any other error."""
    for kind, name in _KINDS:
        if isinstance(exc, kind):
            return name
    return None


def outage_message(name: str) -> str:
    return f"{name} is unavailable; retry in a few seconds"
