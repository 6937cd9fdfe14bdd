"""Notifications, the parts a person sees and sets: templates and their rendering, the
inbox, preferences, push subscriptions and devices (PROTOCOL.md section 5).

The delivery pipeline is in actions/notifications_pipeline.py. Nothing here
imports Flask or Celery.
"""
from __future__ import annotations

import html
import logging
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models import (DeviceToken, Notification, NotificationPreference, NotificationTemplate,
                    WebPushSubscription, endpoint_hash, utcnow)
from models.notifications import CHANNELS

log = logging.getLogger(__name__)

DEFAULT_CHANNELS = ["push", "websocket"]

# The built-in types. `count` is 1 for a single notification and N for a digest of N.
BUILTIN_TEMPLATES: dict[str, dict[str, Any]] = {
    "order_status_update": {
        "title_template": "Order {{ order_id }}: {{ current_status|replace('_', ' ') }}",
        "body_template": "Your order {{ order_id }} is now {{ current_status|replace('_', ' ') }}"
                         "{% if estimated_delivery %}; expected {{ estimated_delivery }}{% endif %}.",
        "html_template": "<p>Your order <b>{{ order_id }}</b> is now "
                         "<b>{{ current_status|replace('_', ' ') }}</b>.</p>"
                         "{% if tracking_number %}<p>Tracking: {{ tracking_number }}</p>{% endif %}",
        "action_url": "/shop/orders/{{ order_id }}", "priority": "normal", "ttl": 86400},
    "payment_confirmation": {
        "title_template": "Payment received",
        "body_template": "We received your payment{% if amount %} of {{ amount }} {{ currency }}"
                         "{% endif %}{% if order_id %} for order {{ order_id }}{% endif %}.",
        "action_url": "{% if order_id %}/shop/orders/{{ order_id }}{% endif %}",
        "priority": "high", "ttl": 7 * 86400, "critical": True},
    "inventory_alert": {
        "title_template": "Low stock: {{ product_id }}",
        "body_template": "{{ product_id }}{% if variant_id %} ({{ variant_id }}){% endif %} is down to "
                         "{{ current_quantity }}{% if threshold %} (threshold {{ threshold }}){% endif %}.",
        "action_url": "/shop/products/{{ product_id }}", "priority": "high", "ttl": 3600},
    "chat_message": {
        "title_template": "{% if count > 1 %}{{ count }} new messages{% else %}New message"
                          "{% if sender_name %} from {{ sender_name }}{% endif %}{% endif %}",
        "body_template": "{% if count > 1 %}You have {{ count }} new messages.{% else %}"
                         "{{ text|default('')|truncate(140) }}{% endif %}",
        "action_url": "/shop/?chat={{ conversation_id }}", "priority": "high", "ttl": 3600,
        "digest_seconds": 60},
    "promotion_alert": {
        "title_template": "{{ title|default('A new promotion') }}",
        "body_template": "{{ message|default('') }}",
        "action_url": "{{ url|default('') }}", "priority": "low", "ttl": 2 * 86400},
}
TEMPLATE_FIELDS = ("title_template", "body_template", "html_template", "action_url", "icon_url")

_text_env = SandboxedEnvironment(autoescape=False)
_html_env = SandboxedEnvironment(autoescape=True)


class TemplateInvalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@lru_cache(maxsize=512)
def _compile(source: str, as_html: bool):
    return (_html_env if as_html else _text_env).from_string(source)


def check_template_source(field: str, source: str | None) -> None:
    """Raise TemplateInvalid when `source` does not compile in the sandbox."""
    if not source:
        return
    try:
        _compile(source, field == "html_template")
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(field, f"line {exc.lineno}: {exc.message}") from None
    except TemplateError as exc:
        raise TemplateInvalid(field, str(exc)) from None


def render_one(source: str | None, variables: dict[str, Any], as_html: bool = False) -> str | None:
    """Render in the sandbox; any error (syntax, runtime, sandbox violation) gives None."""
    if source is None:
        return None
    try:
        return _compile(source, as_html).render(variables)
    except Exception as exc:  # noqa: BLE001 - a bad template must never crash a send
        log.warning("template rendering failed: %s: %s", exc.__class__.__name__, exc)
        return None


def template_for(session: Session, type: str) -> NotificationTemplate:
    tpl = session.get(NotificationTemplate, type)
    return tpl if tpl is not None else builtin_template(type)


def templates_for(session: Session, types: Iterable[str]) -> dict[str, NotificationTemplate]:
    types = set(types)
    rows = {t.type: t for t in session.scalars(
        select(NotificationTemplate).where(NotificationTemplate.type.in_(types)))}
    return {t: rows.get(t) or builtin_template(t) for t in types}


def builtin_template(type: str) -> NotificationTemplate:
    """An unsaved template: the built-in one, or a plain one for an unknown type."""
    spec = BUILTIN_TEMPLATES.get(type) or {
        "title_template": type.replace("_", " ").capitalize(), "body_template": "",
        "priority": "normal", "ttl": 86400}
    values = {"priority": "normal", "ttl": 86400, "critical": False, **spec}
    return NotificationTemplate(type=type, **values)


def known_type(session: Session, type: str) -> bool:
    return type in BUILTIN_TEMPLATES or session.get(NotificationTemplate, type) is not None


def render(tpl: NotificationTemplate, data: dict[str, Any], user: dict[str, Any],
           count: int = 1) -> dict[str, str | None]:
    """title, body, html, action_url, icon_url; a failing part falls back, never raises."""
    variables = {**(data if isinstance(data, dict) else {}), "user": user, "count": count}
    title = render_one(tpl.title_template, variables)
    body = render_one(tpl.body_template, variables)
    # Never an empty title: the inbox lists only rendered items, known by their title.
    title = (title or "").strip()[:1000] or tpl.type.replace("_", " ").capitalize()
    if body is None:
        body = ""
    out: dict[str, str | None] = {"title": title, "body": body.strip()}
    out["html"] = render_one(tpl.html_template, variables, as_html=True) if tpl.html_template else None
    out["action_url"] = (render_one(tpl.action_url, variables) or "").strip() or None
    out["icon_url"] = (render_one(tpl.icon_url, variables) or "").strip() or None
    return out


def template_json(tpl: NotificationTemplate) -> dict[str, Any]:
    return {"type": tpl.type, "title_template": tpl.title_template, "body_template": tpl.body_template,
            "html_template": tpl.html_template, "action_url": tpl.action_url, "icon_url": tpl.icon_url,
            "badge_count": tpl.badge_count, "sound": tpl.sound, "priority": tpl.priority,
            "ttl": tpl.ttl, "critical": bool(tpl.critical), "digest_seconds": tpl.digest_seconds}


def put_template(session: Session, type: str, fields: dict[str, Any]) -> NotificationTemplate:
    """Create or replace a template. Raises TemplateInvalid before anything is stored."""
    for name in TEMPLATE_FIELDS:
        check_template_source(name, fields.get(name))
    tpl = session.get(NotificationTemplate, type)
    if tpl is None:
        tpl = NotificationTemplate(type=type)
        session.add(tpl)
    defaults = {"html_template": None, "action_url": None, "icon_url": None, "badge_count": None,
                "sound": None, "critical": False, "digest_seconds": None}
    for key, value in {**defaults, **fields}.items():
        setattr(tpl, key, value)
    session.flush()
    return tpl


# -- the inbox ---------------------------------------------------------------------------

def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def item_json(n: Notification) -> dict[str, Any]:
    """An inbox item, also the data of the `notification` event (PROTOCOL.md 5)."""
    return {"id": n.id, "type": n.type, "title": n.title, "body": n.body, "action_url": n.action_url,
            "icon_url": n.icon_url, "data": n.data, "created_at": iso(n.created_at),
            "read_at": iso(n.read_at)}


def inbox(session: Session, user_id: str, unread: bool | None = None, limit: int = 50,
          before: str | None = None) -> dict[str, Any]:
    """The user's rendered notifications, newest first.

    An item is stored with an empty title and rendered by the `notifications`
    queue moments later; until then it is not listed (nor counted), so nobody
    sees an untitled item.
    """
    rendered = Notification.title != ""
    q = select(Notification).where(Notification.user_id == user_id, rendered)
    if unread is True:
        q = q.where(Notification.read_at.is_(None))
    elif unread is False:
        q = q.where(Notification.read_at.is_not(None))
    if before:
        anchor = session.get(Notification, before)
        if anchor is not None and anchor.user_id == user_id:
            q = q.where((Notification.created_at < anchor.created_at) | (
                (Notification.created_at == anchor.created_at) & (Notification.id < anchor.id)))
    rows = session.scalars(q.order_by(Notification.created_at.desc(), Notification.id.desc())
                           .limit(limit)).all()
    unread_count = session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, rendered, Notification.read_at.is_(None)))
    return {"notifications": [item_json(n) for n in rows], "unread_count": unread_count}


def mark_read(session: Session, user_id: str, notification_id: str) -> Notification | None:
    """Marks it read (once: the first read time stays); None when it is not this user's."""
    n = session.get(Notification, notification_id)
    if n is None or n.user_id != user_id:
        return None
    session.execute(update(Notification).where(Notification.id == n.id, Notification.read_at.is_(None))
                    .values(read_at=utcnow()))
    session.refresh(n)
    return n


# -- preferences -------------------------------------------------------------------------

def preferences(session: Session, user_id: str) -> dict[str, Any]:
    row = session.get(NotificationPreference, user_id)
    channels = {ch: {"enabled": True} for ch in CHANNELS}
    types: dict[str, Any] = {}
    if row is not None:
        for ch, value in (row.channels or {}).items():
            if ch in channels and isinstance(value, dict):
                channels[ch] = {"enabled": bool(value.get("enabled", True))}
        types = row.types or {}
    return {"channels": channels, "types": types}


def set_preferences(session: Session, user_id: str, channels: dict[str, Any] | None,
                    types: dict[str, Any] | None) -> dict[str, Any]:
    row = session.get(NotificationPreference, user_id)
    if row is None:
        row = NotificationPreference(user_id=user_id, channels={}, types={})
        session.add(row)
    if channels is not None:
        row.channels = {**(row.channels or {}), **channels}
    if types is not None:
        row.types = types
    session.flush()
    return preferences(session, user_id)


def channel_enabled(prefs: dict[str, Any] | None, type: str, channel: str) -> bool:
    """Per-type settings override the global ones; anything unset is enabled."""
    if not prefs:
        return True
    per_type = ((prefs.get("types") or {}).get(type) or {}).get("channels") or {}
    if isinstance(per_type.get(channel), dict) and "enabled" in per_type[channel]:
        return bool(per_type[channel]["enabled"])
    glob = (prefs.get("channels") or {}).get(channel)
    if isinstance(glob, dict) and "enabled" in glob:
        return bool(glob["enabled"])
    return True


# -- push targets ------------------------------------------------------------------------

def add_push_subscription(session: Session, user_id: str, endpoint: str, p256dh: str,
                          auth: str) -> tuple[WebPushSubscription, bool]:
    """Upsert by endpoint (a browser re-subscribing, or a shared device changing hands)."""
    sub = session.scalar(select(WebPushSubscription).where(
        WebPushSubscription.endpoint_hash == endpoint_hash(endpoint)))
    created = sub is None
    if sub is None:
        sub = WebPushSubscription(user_id=user_id, endpoint=endpoint, p256dh=p256dh, auth=auth)
        session.add(sub)
    else:
        sub.user_id, sub.p256dh, sub.auth = user_id, p256dh, auth
    session.flush()
    return sub, created


def remove_push_subscription(session: Session, user_id: str, endpoint: str) -> bool:
    sub = session.scalar(select(WebPushSubscription).where(
        WebPushSubscription.endpoint_hash == endpoint_hash(endpoint),
        WebPushSubscription.user_id == user_id))
    if sub is None:
        return False
    session.delete(sub)
    return True


def add_device(session: Session, user_id: str, token: str, platform: str,
               provider: str = "fcm") -> tuple[DeviceToken, bool]:
    device = session.scalar(select(DeviceToken).where(DeviceToken.token == token))
    created = device is None
    if device is None:
        device = DeviceToken(user_id=user_id, token=token, platform=platform, provider=provider)
        session.add(device)
    else:
        device.user_id, device.platform, device.provider = user_id, platform, provider
    session.flush()
    return device, created


def remove_device(session: Session, user_id: str, token: str) -> bool:
    device = session.scalar(select(DeviceToken).where(DeviceToken.token == token,
                                                      DeviceToken.user_id == user_id))
    if device is None:
        return False
    session.delete(device)
    return True


def escape_text_as_html(content_title: str, body: str, action_url: str | None) -> str:
    link = f'<p><a href="{html.escape(action_url)}">Open</a></p>' if action_url else ""
    return f"<h1>{html.escape(content_title)}</h1><p>{html.escape(body)}</p>{link}"
