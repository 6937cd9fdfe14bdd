"""The LINE and Facebook Messenger webhooks (PROTOCOL.md section 4): each platform's own
format, its signature checked on the raw body before anything is read or stored."""
from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from flask import Blueprint, Response, request
from linebot.v3 import WebhookParser
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.webhooks import MessageEvent, TextMessageContent, UserSource

from actions.chat import channels
from api.errors import ApiError
from api.openapi import json_value, responds
from services import current_services

bp = Blueprint("channels", __name__, url_prefix="/api/v1/channels")

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
                              _text_of(getattr(message, "type", "other"), text)))
    return {"received": taken}


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
            taken.append(_receive("messenger", sender.get("id"), message.get("mid"), _text_of(str(kind), text)))
    return {"received": taken}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _receive(platform: str, user_id: Any, event_id: Any, text: str) -> dict[str, Any]:
    if not isinstance(user_id, str) or not _USER_ID.match(user_id) or \
            not isinstance(event_id, str) or not event_id:
        raise ApiError(400, "invalid_body", "an event without a user id or an event id")
    with current_services().session() as session:
        message, created = channels.receive(session, platform, user_id, event_id, text[:10_000])
    return {"message_id": message["id"], "conversation_id": message["conversation_id"], "created": created}
