"""Real-time delivery: the bus, the per-process hub and the transports.

Domain code calls `publish(...)`; with a `session` the event goes out only
once that session commits (models/session.py).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from broadcast.bus import Bus, Outgoing
from broadcast.metrics import EVENTS_PUBLISHED
from models.session import after_commit_batch

_bus: Bus | None = None


def use_bus(bus: Bus | None) -> None:
    """Set this process's bus (the app factory, the Celery worker, test fixtures)."""
    global _bus
    _bus = bus


def get_bus() -> Bus:
    if _bus is None:
        raise RuntimeError("no bus yet: the wiring sets it (services.Services.build)")
    return _bus


def publish(topic: str, event: str, data: Any, *, session: Session | None = None,
            ephemeral: bool = False, idempotency_key: str | None = None) -> str | None:
    """Publish now, or after `session` commits; returns the cursor when published now."""
    outgoing = Outgoing(topic, event, data, ephemeral, idempotency_key)
    if session is not None:
        # Every event of the transaction goes out together, in order, at commit.
        after_commit_batch(session, publish_many, outgoing)
        return None
    return publish_many([outgoing])[0]


def publish_many(events: list[Outgoing]) -> list[str | None]:
    """Publish now, in order, in one call to the bus; their cursors."""
    if not events:
        return []
    for e in events:
        EVENTS_PUBLISHED.labels(event=e.event.split(":")[0]).inc()
    return get_bus().publish_many(events)
