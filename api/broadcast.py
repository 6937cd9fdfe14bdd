"""`POST /api/v1/broadcast`: publish any event to any topic (service, admin)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint
from pydantic import BaseModel, Field

import broadcast
from actions.effects import enqueue
from api.auth import require
from api.openapi import body, responds
from realtime.topics import TOPIC_PATTERN, parse_topic

bp = Blueprint("broadcast_api", __name__, url_prefix="/api/v1")


class BroadcastIn(BaseModel):
    # The document shows the pattern; parse_topic checks the same one, answering invalid_topic.
    topic: str = Field(max_length=140, json_schema_extra={"pattern": TOPIC_PATTERN})
    event: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    data: Any = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)
    ephemeral: bool = False
    # Below the broker's visibility timeout (celeryconfig), past which Redis
    # would hand a waiting ETA task to a second worker.
    delay_seconds: float | None = Field(default=None, gt=0, le=3000,
                                        description="publish later (at most 50 minutes), from a Celery worker")


class BroadcastOut(BaseModel):
    id: str | None
    scheduled: bool = False


@bp.post("/broadcast")
@require("service", "admin")
@body(BroadcastIn)
@responds(202, BroadcastOut, "published; `id` is the event's cursor")
def publish_event(me, payload: BroadcastIn):
    """Publish an event to a topic."""
    parse_topic(payload.topic)   # a refusal: answered invalid_topic
    if payload.delay_seconds:
        enqueue("tasks.broadcast.publish_event", payload.topic, payload.event, payload.data,
                payload.idempotency_key, countdown=payload.delay_seconds)
        return {"id": None, "scheduled": True}, 202
    cursor = broadcast.publish(payload.topic, payload.event, payload.data,
                               ephemeral=payload.ephemeral,
                               idempotency_key=payload.idempotency_key)
    return {"id": cursor, "scheduled": False}, 202
