"""The one interface every outbound channel adapter implements.

A provider knows, for one channel, which targets a user has (`targets`), how
to send one rendered notification to one target (`send`) and how to forget a
target its service reported gone (`forget`). Errors say what to do next:
`Gone` (remove the target, do not retry), `Permanent` (do not retry),
`Transient` (retry with backoff). Providers know no Celery and no Flask.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models import Customer, DeviceToken, User


@dataclass(frozen=True)
class Target:
    """`key` is the delivery row's target (unique per notification and channel)."""

    key: str
    address: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Content:
    """A notification rendered for delivery, with the template's delivery options."""

    notification_id: str
    user_id: str
    type: str
    title: str
    body: str
    html: str | None = None
    action_url: str | None = None
    icon_url: str | None = None
    badge_count: int | None = None
    sound: str | None = None
    priority: str = "normal"      # low | normal | high: each provider maps it to its own field
    ttl: int = 86400              # seconds still left to live
    data: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] = field(default_factory=dict)   # the inbox item (PROTOCOL.md 5)


class DeliveryError(Exception):
    """A failed send; `status` is the provider's HTTP status or reply code, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Transient(DeliveryError):
    """Worth retrying later (timeouts, 5xx, 429, a refused connection)."""


class Permanent(DeliveryError):
    """Retrying cannot help (a malformed request, a bad address)."""


class Gone(Permanent):
    """The target no longer exists (web push 404/410, FCM UNREGISTERED): remove it."""


class Provider(Protocol):
    channel: str
    name: str

    def configured(self) -> bool:
        """False when settings lack what the provider needs (the row fails with why)."""

    def targets(self, session: Session, user_ids: Collection[str]) -> dict[str, list[Target]]:
        """Each of these users' targets on this provider, in a stable order; a user with none
        may be left out. One query for them all: a batch has a hundred users."""

    def send(self, target: Target, content: Content) -> str | None:
        """Send once; return the provider's message id. Raises a DeliveryError."""

    def forget(self, session: Session, target: Target) -> None:
        """Remove a target the provider reported gone."""


def contacts_of(session: Session, user_ids: Collection[str]) -> dict[str, tuple[str | None, str | None]]:
    """Each user's (email, phone): the store's customer record first, then the user row."""
    rows = session.execute(
        select(User.id, Customer.email, User.email, Customer.phone, User.phone)
        .outerjoin(Customer, Customer.user_id == User.id).where(User.id.in_(list(user_ids))))
    return {uid: (c_email or u_email, c_phone or u_phone) for uid, c_email, u_email, c_phone, u_phone in rows}


def device_targets(session: Session, user_ids: Collection[str], provider: str) -> dict[str, list[Target]]:
    """The users' app devices registered with `provider` (fcm, apns), as targets keyed by it."""
    found: dict[str, list[Target]] = {}
    for d in session.execute(select(DeviceToken.user_id, DeviceToken.token, DeviceToken.platform).where(
            DeviceToken.user_id.in_(list(user_ids)), DeviceToken.provider == provider)
            .order_by(DeviceToken.user_id, DeviceToken.token)):
        found.setdefault(d.user_id, []).append(Target(f"{provider}:{d.token[:1000]}", d.token,
                                                      {"platform": d.platform}))
    return found


def forget_device(session: Session, provider: str, token: str) -> None:
    """A device token its service reported gone."""
    session.execute(delete(DeviceToken).where(DeviceToken.token == token, DeviceToken.provider == provider))
