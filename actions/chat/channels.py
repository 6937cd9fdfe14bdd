"""Customers who write from LINE and Facebook Messenger (PROTOCOL.md section 4).

A platform's user is a customer of their own (`line:U…`, `fb:P…`) with at most one
open conversation, routed like any other. What they write arrives through the
platform's webhook and is stored once per platform event id (the message's
`client_id`); what an agent answers goes back through the platform's send API
from the `notifications` queue (`tasks.notifications.send_platform_message`), and
the message is `delivered` once the platform accepted it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from actions.chat.access import OPEN
from actions.chat.agents import ensure_user
from actions.chat.attachments import StorageError, Storages, upload_attachment
from actions.chat.conversations import create_conversation
from actions.chat.messages import send_in_transaction
from actions.chat.platforms import PLATFORMS, platform_of
from actions.chat.shapes import message_json, topic
from broadcast import publish
from models import Conversation, Message, utcnow
from models.session import rowcount

@dataclass(frozen=True)
class PlatformCustomer:
    """Who writes through a platform's webhook, as the chat actions see a caller."""
    id: str
    role: str = "customer"
    name: str | None = None


@dataclass(frozen=True)
class PlatformFile:
    """An image or a file a platform's user sent, fetched from the platform."""
    kind: str         # the message_type it becomes: "image" or "file"
    filename: str
    data: bytes


def client_id_of(platform: str, event_id: str) -> str:
    return f"{platform}:{event_id}"[:64]


def already_received(session: Session, platform: str, platform_user_id: str, event_id: str) -> bool:
    """Whether a platform's event was stored before (a redelivery): nothing to fetch again."""
    prefix, _ = PLATFORMS[platform]
    return session.scalar(select(Message.id).where(
        Message.sender_id == prefix + platform_user_id,
        Message.client_id == client_id_of(platform, event_id)).limit(1)) is not None


def receive(session: Session, platform: str, platform_user_id: str, event_id: str, text: str,
            file: PlatformFile | None = None, storages: Storages | None = None,
            settings: Any = None) -> tuple[dict[str, Any], bool]:
    """A message from a platform's user: into their open conversation, or a new one; a
    `file` becomes the message's attachment (`text` stands in for it when refused).
    Returns (the message's JSON, created); a repeated `event_id` creates nothing."""
    prefix, source = PLATFORMS[platform]
    me = PlatformCustomer(prefix + platform_user_id)
    ensure_user(session, me.id, "customer")
    conv_id = session.scalar(select(Conversation.id).where(
        Conversation.customer_id == me.id, Conversation.status.in_(OPEN))
        .order_by(Conversation.created_at.desc()).limit(1))
    if conv_id is None:
        conv_id = create_conversation(session, me, metadata={"source": source}).id
    content: dict[str, Any] = {"text": text}
    message_type = "text"
    if file is not None and storages is not None:
        try:
            with session.begin_nested():
                att = upload_attachment(session, me, conv_id, file.filename, file.data, storages, settings)
        except StorageError as exc:   # a type or size this shop does not take: the agent reads why
            content["metadata"] = {"attachment_error": exc.message}
        else:
            content = {"text": None, "attachments": [{"id": att["id"]}]}
            message_type = file.kind if file.kind == "file" or att["content_type"].startswith("image/") else "file"
    return send_in_transaction(session, me, conv_id, content, message_type, client_id_of(platform, event_id),
                               False, None)


def outbound(session: Session, message_id: str) -> tuple[str, str, str] | None:
    """(platform, platform user id, text) of an agent's message still to hand to its
    customer's platform; None when there is nothing (left) to send."""
    found = session.execute(select(Message, Conversation.customer_id).join(
        Conversation, Conversation.id == Message.conversation_id).where(Message.id == message_id)).first()
    if found is None:
        return None
    msg, customer_id = found
    where = platform_of(customer_id)
    if where is None or msg.status != "sent" or msg.is_private or msg.sender_type != "agent":
        return None
    return where[0], where[1], (msg.content or {}).get("text") or ""


def delivered(session: Session, message_id: str) -> bool:
    """The platform accepted the message: `delivered`, announced as the customer's receipt."""
    msg = session.get(Message, message_id)
    if msg is None:
        return False
    done = rowcount(session.execute(update(Message).where(Message.id == message_id, Message.status == "sent")
                                    .values(status="delivered", updated_at=utcnow())
                                    .execution_options(synchronize_session=False)))
    if done:
        conv = session.get(Conversation, msg.conversation_id)
        publish(topic(msg.conversation_id), "message:delivered",
                {"message_id": message_id, "user_id": conv.customer_id if conv else None,
                 "conversation_id": msg.conversation_id}, session=session)
    return bool(done)


def failed(session: Session, message_id: str, error: str) -> dict[str, Any] | None:
    """The platform refused the message for good: the error kept in its metadata and shown."""
    msg = session.get(Message, message_id)
    if msg is None:
        return None
    content = dict(msg.content or {})
    content["metadata"] = {**(content.get("metadata") or {}), "delivery_error": error[:500]}
    msg.content = content
    msg.updated_at = utcnow()
    session.flush()
    data = message_json(msg)
    publish(topic(msg.conversation_id), "message:delivery_failed",
            {"message_id": message_id, "conversation_id": msg.conversation_id, "error": error[:500]},
            session=session)
    return data
