"""Receipts: a message delivered to, and read by, the other side (PROTOCOL.md section 4)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from actions.chat.access import access_conversation
from actions.chat.errors import ChatError
from actions.chat.shapes import topic
from broadcast import publish
from models import Conversation, Message, MessageReceipt, utcnow


def _message_in(session: Session, me: Any, message_id: Any,
                conversation_id: str | None) -> tuple[Message, Conversation]:
    if not isinstance(message_id, str) or not message_id:
        raise ChatError(400, "invalid_message_id", "message_id must be a message id")
    msg = session.get(Message, message_id)
    if msg is None or (conversation_id and msg.conversation_id != conversation_id):
        raise ChatError(404, "message_not_found", f"no message {message_id!r}")
    conv = access_conversation(session, me, msg.conversation_id, write=True)
    if msg.is_private and me.role == "customer":
        raise ChatError(404, "message_not_found", f"no message {message_id!r}")
    return msg, conv


def _upsert_receipt(session: Session, message_id: str, user_id: str, status: str) -> bool:
    """True when the receipt moved forward (never from read back to delivered)."""
    receipt = session.scalars(select(MessageReceipt).where(
        MessageReceipt.message_id == message_id, MessageReceipt.user_id == user_id)).first()
    if receipt is None:
        session.add(MessageReceipt(message_id=message_id, user_id=user_id, status=status))
        return True
    if receipt.status == "delivered" and status == "read":
        receipt.status, receipt.at = "read", utcnow()
        return True
    return False


def mark_delivered(session: Session, me: Any, message_id: Any,
                   conversation_id: str | None = None) -> dict[str, Any]:
    """The recipient's client got the message: `message:delivered` once."""
    msg, conv = _message_in(session, me, message_id, conversation_id)
    if msg.sender_id == me.id:
        return {"message_id": msg.id, "status": msg.status}
    if _upsert_receipt(session, msg.id, me.id, "delivered"):
        if msg.status == "sent":
            msg.status = "delivered"
        data = {"message_id": msg.id, "user_id": me.id, "conversation_id": conv.id}
        publish(topic(conv.id), "message:delivered", data, session=session)
    return {"message_id": msg.id, "status": msg.status}


def mark_read(session: Session, me: Any, message_id: Any,
              conversation_id: str | None = None) -> dict[str, Any]:
    """Marks the message and every earlier one from others read for `me`; one `message:read`."""
    msg, conv = _message_in(session, me, message_id, conversation_id)
    stmt = select(Message).where(
        Message.conversation_id == conv.id, Message.sender_id != me.id,
        Message.sender_type != "system",
        or_(Message.created_at < msg.created_at,
            and_(Message.created_at == msg.created_at, Message.id <= msg.id)))
    if me.role == "customer":
        stmt = stmt.where(Message.is_private.is_(False))
    moved = 0
    for m in session.scalars(stmt).all():
        if _upsert_receipt(session, m.id, me.id, "read"):
            moved += 1
            m.status = "read"
    if moved:
        data = {"message_id": msg.id, "user_id": me.id, "conversation_id": conv.id}
        publish(topic(conv.id), "message:read", data, session=session)
    return {"message_id": msg.id, "marked": moved}
