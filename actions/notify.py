"""`notify()`: what the rest of the code calls to tell a user something.

Stores the notification and starts its delivery pipeline on the
`notifications` queue once the caller's transaction commits
(actions/notifications_pipeline.py, behind `tasks.notifications.dispatch`).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from actions.effects import enqueue
from actions.notifications import DEFAULT_CHANNELS  # noqa: F401  (re-exported)
from actions.notifications_pipeline import clean_channels
from models import Notification, new_id


def notify(session: Session, user_id: str, type: str, data: dict[str, Any],
           channels: list[str] | None = None) -> str:
    """Queue a notification of `type` for `user_id`; returns its id."""
    notification = Notification(id=new_id(), user_id=user_id, type=type, data=data or {},
                                channels=clean_channels(channels), title="", body="")
    session.add(notification)
    enqueue("tasks.notifications.dispatch", notification.id, session=session)
    return notification.id
