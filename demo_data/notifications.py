"""The built-in notification templates, stored so an admin can see and edit them (idempotent)."""
from __future__ import annotations

from sqlalchemy.orm import Session

from actions.notifications import BUILTIN_TEMPLATES, builtin_template
from models import NotificationTemplate


def seed(session: Session) -> None:
    for type in BUILTIN_TEMPLATES:
        if session.get(NotificationTemplate, type) is None:
            session.add(builtin_template(type))
    session.flush()
