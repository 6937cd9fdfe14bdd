"""Tasks of the `tracking` queue: each a few lines around an action.

`BEAT_SCHEDULE` here is merged into Celery beat's schedule (tasks/__init__.py).
"""
from __future__ import annotations

from tasks import celery_app  # noqa: F401

BEAT_SCHEDULE: dict = {}
