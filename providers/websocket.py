"""The `websocket` channel: a `notification` event on `user:{id}` (PROTOCOL.md 5).

The bus's idempotency key makes a retried publish of the same notification a
no-op for 5 minutes, so a worker that dies between publishing and recording
the delivery does not show the notification twice.
"""
from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session

import broadcast
from providers.base import Content, Target
from settings import Settings


def idempotency_key(notification_id: str) -> str:
    return f"notification:{notification_id}"


class WebSocketProvider:
    channel = "websocket"
    name = "websocket"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def configured(self) -> bool:
        return True

    def targets(self, session: Session, user_ids: Collection[str]) -> dict[str, list[Target]]:
        return {uid: [Target("")] for uid in user_ids}

    def send(self, target: Target, content: Content) -> str | None:
        return broadcast.publish(f"user:{content.user_id}", "notification", content.item,
                                 idempotency_key=idempotency_key(content.notification_id))

    def forget(self, session: Session, target: Target) -> None:
        pass
