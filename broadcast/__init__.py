"""Real-time delivery: the bus, the per-process hub and the transports.

Domain code calls `publish(...)`; with a `session` the event goes out only
once that session commits (models/session.py).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from broadcast.bus import Bus
from models.session import after_commit

_bus: Bus | None = None


def use_bus(bus: Bus | None) -> None:
    """Set this process's bus (the app factory, the Celery worker, test fixtures)."""
    global _bus
    _bus = bus


def get_bus() -> Bus:
    if _bus is None:
        from services import get_services
        get_services()  # builds the process's services from the environment
    assert _bus is not None
    return _bus


def publish(topic: str, event: str, data: Any, *, session: Session | None = None,
            ephemeral: bool = False, idempotency_key: str | None = None) -> str | None:
    """Publish now, or after `session` commits; returns the cursor when published now."""
    if session is not None:
        after_commit(session, _publish, topic, event, data, ephemeral, idempotency_key)
        return None
    return _publish(topic, event, data, ephemeral, idempotency_key)


def _publish(topic: str, event: str, data: Any, ephemeral: bool,
             idempotency_key: str | None) -> str | None:
    from broadcast.metrics import EVENTS_PUBLISHED
    EVENTS_PUBLISHED.labels(event=event.split(":")[0]).inc()
    return get_bus().publish(topic, event, data, ephemeral=ephemeral,
                             idempotency_key=idempotency_key)
