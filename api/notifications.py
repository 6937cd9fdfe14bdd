"""HTTP API for notifications (PROTOCOL.md 5). Thin: parse, authorise, call actions.notifications."""
from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field

from actions import notifications as notes
from actions import notifications_pipeline as pipeline
from api.auth import require
from api.errors import ApiError
from api.ids import ID, TYPE_NAME
from api.openapi import body, query, responds
from api.stats import stats_section
from models import Notification
from providers.webpush import vapid_public_key as key_of
from services import current_services

bp = Blueprint("notifications", __name__, url_prefix="/api/v1")

Channel = Literal["push", "email", "sms", "websocket"]


class NotificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=64, pattern=ID)
    type: str = Field(min_length=1, max_length=64, pattern=TYPE_NAME)
    data: dict[str, Any] = Field(default_factory=dict)
    channels: list[Channel] | None = Field(default=None, max_length=4)


class BulkIn(BaseModel):
    notifications: list[NotificationIn] = Field(min_length=1, max_length=10_000)


class IdOut(BaseModel):
    id: str


class IdsOut(BaseModel):
    ids: list[str]


def _check_types(session, types: set[str]) -> None:
    for t in types:
        if not notes.known_type(session, t):
            raise ApiError(422, "unknown_type", f"no template for the type {t!r}")


@bp.post("/notifications")
@require("service", "admin")
@body(NotificationIn)
@responds(202, IdOut, "stored; delivery runs on the notifications queue")
@responds(422, description="no template for that type")
def create_notification(me, payload: NotificationIn):
    """Send a notification to a user."""
    with current_services().session() as session:
        _check_types(session, {payload.type})
        ids = pipeline.create_many(session, [payload.model_dump()])
    return {"id": ids[0]}, 202


@bp.post("/notifications/bulk")
@require("service", "admin")
@body(BulkIn)
@responds(202, IdsOut, "stored; dispatched in batches of 100")
@responds(422, description="no template for one of the types")
def create_bulk(me, payload: BulkIn):
    """Send many notifications; they are dispatched in batches."""
    services = current_services()
    with services.session() as session:
        _check_types(session, {n.type for n in payload.notifications})
        ids = pipeline.create_many(session, [n.model_dump() for n in payload.notifications],
                                   services.settings.notifications.batch_size)
    return {"ids": ids}, 202


class InboxQuery(BaseModel):
    unread: bool | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, max_length=64, pattern=ID)


class Item(BaseModel):
    id: str
    type: str
    title: str
    body: str
    action_url: str | None
    icon_url: str | None
    data: dict[str, Any]
    created_at: str
    read_at: str | None


class InboxOut(BaseModel):
    notifications: list[Item]
    unread_count: int


@bp.get("/notifications")
@require()
@query(InboxQuery)
@responds(200, InboxOut, "the caller's inbox, newest first")
def list_inbox(me, params: InboxQuery):
    """The caller's in-app inbox, newest first, with the unread count."""
    with current_services().session() as session:
        return notes.inbox(session, me.id, params.unread, params.limit, params.before)


@bp.post("/notifications/<id:id>/read")
@require()
@responds(200, Item, "the item, read")
def read_notification(me, id: str):
    """Mark one of the caller's notifications read."""
    with current_services().session() as session:
        n = notes.mark_read(session, me.id, id)
        if n is None:
            raise ApiError(404, "not_found", "no such notification")
        return notes.item_json(n)


class ChannelPref(BaseModel):
    enabled: bool = True


class ChannelsPref(BaseModel):
    model_config = ConfigDict(extra="forbid")
    push: ChannelPref | None = None
    email: ChannelPref | None = None
    sms: ChannelPref | None = None
    websocket: ChannelPref | None = None


class TypePref(BaseModel):
    channels: ChannelsPref = Field(default_factory=ChannelsPref)


class PreferencesIn(BaseModel):
    channels: ChannelsPref | None = None
    types: dict[str, TypePref] | None = Field(default=None, max_length=100)


@bp.get("/me/preferences")
@require()
def get_preferences(me):
    """The caller's notification preferences (channels on and off, per type overrides)."""
    with current_services().session() as session:
        return notes.preferences(session, me.id)


@bp.put("/me/preferences")
@require()
@body(PreferencesIn)
def put_preferences(me, payload: PreferencesIn):
    """Set the caller's preferences; per-type settings override the global ones."""
    channels = payload.channels.model_dump(exclude_none=True) if payload.channels else None
    types = ({t: {"channels": p.channels.model_dump(exclude_none=True)} for t, p in payload.types.items()}
             if payload.types is not None else None)
    for t in (types or {}):
        if len(t) > 64:
            raise ApiError(400, "validation_error", "types: a type is at most 64 characters")
    with current_services().session() as session:
        return notes.set_preferences(session, me.id, channels, types)


class PushKeys(BaseModel):
    p256dh: str = Field(min_length=16, max_length=255)
    auth: str = Field(min_length=8, max_length=255)


class PushSubscriptionIn(BaseModel):
    endpoint: str = Field(min_length=8, max_length=4096, pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$")
    keys: PushKeys
    expirationTime: float | None = None  # noqa: N815 (the browser's field name)


class PushSubscriptionDelete(BaseModel):
    endpoint: str = Field(min_length=8, max_length=4096)


@bp.post("/me/push-subscriptions")
@require()
@body(PushSubscriptionIn)
@responds(201, description="registered")
@responds(200, description="already registered: updated")
def add_push_subscription(me, payload: PushSubscriptionIn):
    """Register the browser's PushSubscription for web push."""
    with current_services().session() as session:
        sub, created = notes.add_push_subscription(session, me.id, payload.endpoint,
                                                   payload.keys.p256dh, payload.keys.auth)
        return {"id": sub.id, "endpoint": sub.endpoint}, 201 if created else 200


@bp.delete("/me/push-subscriptions")
@require()
@body(PushSubscriptionDelete)
@responds(204, description="removed")
@responds(404, description="no such subscription of the caller's")
def delete_push_subscription(me, payload: PushSubscriptionDelete):
    """Remove a web push subscription of the caller's."""
    with current_services().session() as session:
        if not notes.remove_push_subscription(session, me.id, payload.endpoint):
            raise ApiError(404, "not_found", "no such subscription")
    return "", 204


@bp.get("/webpush/vapid-public-key")
@require()
def vapid_public_key(me):
    """The VAPID public key for the browser's pushManager.subscribe()."""
    key = key_of(current_services().settings)
    if not key:
        raise ApiError(503, "unavailable", "web push is not configured")
    return {"public_key": key}


class DeviceIn(BaseModel):
    token: str = Field(min_length=8, max_length=1000)
    platform: Literal["android", "ios", "web"]
    provider: Literal["fcm", "apns"] = "fcm"   # apns: a device token sent to Apple straight from here


class DeviceDelete(BaseModel):
    token: str = Field(min_length=1, max_length=1000)


@bp.post("/me/devices")
@require()
@body(DeviceIn)
@responds(201, description="registered")
@responds(200, description="already registered: updated")
def add_device(me, payload: DeviceIn):
    """Register a push token of the caller's device: FCM's (default), or an APNs device token."""
    with current_services().session() as session:
        device, created = notes.add_device(session, me.id, payload.token, payload.platform, payload.provider)
        return {"id": device.id, "platform": device.platform, "provider": device.provider}, \
            201 if created else 200


@bp.delete("/me/devices")
@require()
@body(DeviceDelete)
@responds(204, description="removed")
@responds(404, description="no such device of the caller's")
def delete_device(me, payload: DeviceDelete):
    """Remove one of the caller's device tokens."""
    with current_services().session() as session:
        if not notes.remove_device(session, me.id, payload.token):
            raise ApiError(404, "not_found", "no such device")
    return "", 204


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title_template: str = Field(min_length=1, max_length=2000)
    body_template: str = Field(max_length=20_000)
    html_template: str | None = Field(default=None, max_length=100_000)
    action_url: str | None = Field(default=None, max_length=2048)
    icon_url: str | None = Field(default=None, max_length=2048)
    badge_count: int | None = Field(default=None, ge=0, le=99_999)
    sound: str | None = Field(default=None, max_length=255)
    priority: Literal["low", "normal", "high"] = "normal"
    ttl: int = Field(default=86400, gt=0, le=28 * 86400)
    critical: bool = False
    digest_seconds: int | None = Field(default=None, ge=1, le=86400)


@bp.get("/notification-templates/<type_name:type>")
@require("admin")
def get_template(me, type: str):
    """A notification type's template (the built-in one until it is changed)."""
    with current_services().session() as session:
        if not notes.known_type(session, type):
            raise ApiError(404, "not_found", f"no template for {type!r}")
        return notes.template_json(notes.template_for(session, type))


@bp.put("/notification-templates/<type_name:type>")
@require("admin")
@body(TemplateIn)
@responds(422, description="a template does not compile")
def put_template(me, type: str, payload: TemplateIn):
    """Create or replace a type's template; a template that does not compile is 422."""
    with current_services().session() as session:
        try:
            tpl = notes.put_template(session, type, payload.model_dump())
        except notes.TemplateInvalid as exc:
            raise ApiError(422, "invalid_template", str(exc), details={"field": exc.field}) from None
        return notes.template_json(tpl)


@bp.get("/notifications/<id:id>/deliveries")
@require("admin")
def list_deliveries(me, id: str):
    """One row per channel attempt of a notification."""
    with current_services().session() as session:
        if session.get(Notification, id) is None:
            raise ApiError(404, "not_found", "no such notification")
        return {"notification_id": id, "deliveries": pipeline.deliveries(session, id)}


@stats_section("notifications")
def _stats(session) -> dict:
    return pipeline.delivery_stats(session)
