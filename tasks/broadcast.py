"""Publishing from a worker process: the event reaches every web process's clients."""
from __future__ import annotations

from typing import Any

import broadcast
from tasks import celery_app


@celery_app.task(name="tasks.broadcast.publish_event")
def publish_event(topic: str, event: str, data: Any, idempotency_key: str | None = None) -> str | None:
    return broadcast.publish(topic, event, data, idempotency_key=idempotency_key)
