"""Notifications: templates, the inbox, preferences, push targets and per-channel deliveries."""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, false, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models.base import Base, new_id, utcnow
from models.types import UTCDateTime, one_of

PRIORITIES = ("low", "normal", "high")
PLATFORMS = ("android", "ios", "web")
DEVICE_PROVIDERS = ("fcm", "apns")
DELIVERY_STATUSES = ("queued", "sent", "failed", "skipped", "expired")
CHANNELS = ("push", "email", "sms", "websocket")


class NotificationTemplate(Base):
    __tablename__ = "notification_templates"
    __table_args__ = (
        CheckConstraint(one_of("priority", PRIORITIES), name="priority"),
        CheckConstraint("ttl > 0", name="ttl_positive"),
    )

    type: Mapped[str] = mapped_column(String(64), primary_key=True)
    title_template: Mapped[str] = mapped_column(Text)
    body_template: Mapped[str] = mapped_column(Text)
    html_template: Mapped[str | None] = mapped_column(Text)
    action_url: Mapped[str | None] = mapped_column(String(2048))
    icon_url: Mapped[str | None] = mapped_column(String(2048))
    badge_count: Mapped[int | None] = mapped_column(Integer)
    sound: Mapped[str | None] = mapped_column(String(255))
    priority: Mapped[str] = mapped_column(String(16), default="normal", server_default="normal")
    ttl: Mapped[int] = mapped_column(Integer, default=86400, server_default=text("86400"))
    critical: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    digest_seconds: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Notification(Base):
    """One notification to one user: the in-app inbox item, rendered at creation."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_created", "user_id", "created_at"),
        Index(None, "digest_key"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    action_url: Mapped[str | None] = mapped_column(String(2048))
    icon_url: Mapped[str | None] = mapped_column(String(2048))
    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["push", "websocket"])
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    digest_key: Mapped[str | None] = mapped_column(String(255))

    deliveries: Mapped[list[NotificationDelivery]] = relationship(
        back_populates="notification", cascade="all, delete-orphan", passive_deletes=True,
        order_by="NotificationDelivery.id")


class NotificationPreference(Base):
    """`channels`: {push: {enabled}, ...}; `types`: {<type>: {channels: {...}}} (PROTOCOL.md 5)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    types: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


def endpoint_hash(endpoint: str) -> str:
    """sha256 hex of a push endpoint: the unique key (endpoints may be too long to index)."""
    return hashlib.sha256(endpoint.encode("utf-8")).hexdigest()


def _endpoint_hash_default(context) -> str:  # noqa: ANN001
    return endpoint_hash(context.get_current_parameters()["endpoint"])


class WebPushSubscription(Base):
    """A browser PushSubscription. `endpoint_hash` is filled from `endpoint` whenever it is
    set; look a subscription up with `endpoint_hash == endpoint_hash(endpoint)`."""

    __tablename__ = "webpush_subscriptions"
    __table_args__ = (Index(None, "user_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(Text)
    endpoint_hash: Mapped[str] = mapped_column(
        String(64), unique=True, default=_endpoint_hash_default)
    p256dh: Mapped[str] = mapped_column(String(255))
    auth: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @validates("endpoint")
    def _rehash(self, key: str, value: str) -> str:
        # Not an `onupdate`: that runs for every UPDATE, also one that leaves the endpoint alone.
        self.endpoint_hash = endpoint_hash(value)
        return value


class DeviceToken(Base):
    """An app's push token: an FCM registration token, or an APNs device token sent to
    straight from here (`provider`)."""

    __tablename__ = "device_tokens"
    __table_args__ = (
        CheckConstraint(one_of("platform", PLATFORMS), name="platform"),
        CheckConstraint(one_of("provider", DEVICE_PROVIDERS), name="provider"),
        Index(None, "user_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(1024), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(8), default="fcm", server_default="fcm")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class NotificationDelivery(Base):
    """One row per (notification, channel, target): `target` is the push endpoint hash, the
    device token, the e-mail address or phone number, '' for channels without a target."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", "target"),
        CheckConstraint(one_of("status", DELIVERY_STATUSES), name="status"),
        Index("ix_notification_deliveries_status_updated", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    notification_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("notifications.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    notification: Mapped[Notification] = relationship(back_populates="deliveries")
