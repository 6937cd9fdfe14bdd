"""The LINE and Facebook Messenger webhooks (PROTOCOL.md section 4): each platform's own
format, its signature checked on the raw body before anything is read or stored."""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from linebot.v3 import WebhookParser
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.webhooks import (FileMessageContent, ImageMessageContent, MessageEvent, TextMessageContent,
                                 UserSource)

from actions.chat import channels
from actions.chat.channels import PlatformFile
from api.errors import ApiError
from api.openapi import json_value, responds
from providers.messaging import PlatformError, line_content, url_content
from services import current_services

bp = Blueprint("channels", __name__, url_prefix="/api/v1/channels")
log = logging.getLogger(__name__)

# Platform user ids become customer ids (`line:` + 33, `fb:` + up to 20 digits), which
# name topics (`user:{id}`): the id's characters, at most 64 with the prefix.
_USER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")


def _settings():
    return current_services().settings.chat


def _text_of(kind: str, text: str | None) -> str:
    """What an agent reads of a platform message: its text, or what kind it was."""
    return text if text else f"[{kind} message]"


@bp.post("/line/webhook")
@responds(200, description="the events taken (each webhookEventId stored once)")
@responds(401, None, "X-Line-Signature missing or wrong: nothing stored")
@responds(400, None, "signed, but not a LINE webhook body")
@responds(404, None, "LINE is not set up here")
def line_webhook():
    """LINE Messaging API webhook: a LINE user's messages into their conversation."""
    secret = _settings().line_channel_secret
    if not secret:
        raise ApiError(404, "not_found", "LINE is not set up here (SB_LINE_CHANNEL_SECRET)")
    raw = request.get_data(cache=True)
    try:
        events = WebhookParser(secret).parse(raw.decode("utf-8", "replace"),
                                             request.headers.get("X-Line-Signature", ""))
    except InvalidSignatureError:
        raise ApiError(401, "invalid_signature", "X-Line-Signature does not match the body") from None
    except ValueError:
        raise ApiError(400, "invalid_body", "not a LINE webhook body") from None
    taken = []
    for event in events:
        if not isinstance(event, MessageEvent) or not isinstance(event.source, UserSource):
            continue
        message = event.message
        text = message.text if isinstance(message, TextMessageContent) else None
        taken.append(_receive("line", event.source.user_id, event.webhook_event_id,
                              _text_of(getattr(message, "type", "other"), text), _line_file(message)))
    return {"received": taken}


Fetch = tuple[str, str, Callable[[int], bytes]]   # (message_type, filename, fetch(limit) -> bytes)


def _line_file(message: Any) -> Fetch | None:
    """How to fetch what a LINE image or file message carries (LINE keeps it, or the sender's
    own server does: `contentProvider.type` external)."""
    if isinstance(message, ImageMessageContent):
        provider = message.content_provider
        if provider is not None and provider.type == "external" and provider.original_content_url:
            url = provider.original_content_url
            return "image", f"line-{message.id}", lambda limit: url_content(url, limit)
        return "image", f"line-{message.id}", lambda limit: line_content(current_services().settings, message.id, limit)
    if isinstance(message, FileMessageContent):
        return "file", message.file_name, lambda limit: line_content(current_services().settings, message.id, limit)
    return None


def _messenger_file(message: dict) -> Fetch | None:
    """The first image or file of a Messenger message, from the address Meta gives."""
    for item in _list(message.get("attachments")):
        payload = item.get("payload") if isinstance(item, dict) else None
        url = payload.get("url") if isinstance(payload, dict) else None
        if item.get("type") in ("image", "file") and isinstance(url, str):
            name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or "file"
            return item["type"], name, lambda limit, url=url: url_content(url, limit)
    return None


@bp.get("/messenger/webhook")
@responds(200, description="hub.challenge, as plain text")
@responds(403, None, "not the verify token set here")
def messenger_verify():
    """Meta's subscription check: the challenge back when the verify token matches."""
    token = _settings().messenger_verify_token
    given = request.args.get("hub.verify_token", "")
    if not token or request.args.get("hub.mode") != "subscribe" or not hmac.compare_digest(given, token):
        raise ApiError(403, "forbidden", "hub.verify_token does not match")
    return Response(request.args.get("hub.challenge", ""), mimetype="text/plain")


@bp.post("/messenger/webhook")
@responds(200, description="the messages taken (each mid stored once)")
@responds(401, None, "X-Hub-Signature-256 missing or wrong: nothing stored")
@responds(400, None, "signed, but not a Messenger page webhook body")
@responds(404, None, "Messenger is not set up here")
def messenger_webhook():
    """Messenger Platform webhook: a page-scoped user's messages into their conversation."""
    secret = _settings().messenger_app_secret
    if not secret:
        raise ApiError(404, "not_found", "Messenger is not set up here (SB_MESSENGER_APP_SECRET)")
    raw = request.get_data(cache=True)
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected):
        raise ApiError(401, "invalid_signature", "X-Hub-Signature-256 does not match the body")
    payload = json_value(raw)
    if not isinstance(payload, dict) or payload.get("object") != "page":
        raise ApiError(400, "invalid_body", "not a Messenger page webhook body")
    taken = []
    for entry in _list(payload.get("entry")):
        for item in _list(entry.get("messaging") if isinstance(entry, dict) else None):
            message, sender = item.get("message"), item.get("sender")
            if not isinstance(message, dict) or message.get("is_echo") or not isinstance(sender, dict):
                continue   # the page's own messages come back as echoes
            kind = "text" if message.get("text") else \
                next((a.get("type") for a in _list(message.get("attachments")) if isinstance(a, dict)), "other")
            text = message.get("text") if isinstance(message.get("text"), str) else None
            taken.append(_receive("messenger", sender.get("id"), message.get("mid"), _text_of(str(kind), text),
                                  _messenger_file(message)))
    return {"received": taken}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _receive(platform: str, user_id: Any, event_id: Any, text: str, fetch: Fetch | None = None) -> dict[str, Any]:
    if not isinstance(user_id, str) or not _USER_ID.match(user_id) or \
            not isinstance(event_id, str) or not event_id:
        raise ApiError(400, "invalid_body", "an event without a user id or an event id")
    services = current_services()
    file = None
    if fetch is not None:
        with services.session() as session:
            again = channels.already_received(session, platform, user_id, event_id)
        if not again:   # fetched outside any transaction: the platform may be slow
            kind, filename, get = fetch
            try:
                file = PlatformFile(kind, filename, get(services.settings.chat.attachment_max_bytes))
            except PlatformError as exc:
                log.warning("%s %s: %s", platform, event_id, exc)
                text = f"{text} (not fetched: {exc})"
    with services.session() as session:
        message, created = channels.receive(session, platform, user_id, event_id, text[:10_000], file,
                                            services.attachments, services.settings)
    return {"message_id": message["id"], "conversation_id": message["conversation_id"], "created": created}
