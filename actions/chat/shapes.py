"""The JSON of a conversation and a message (PROTOCOL.md section 4), and a conversation's topic."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from models import Conversation, Message


def topic(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def conversation_json(conv: Conversation, **extra: Any) -> dict[str, Any]:
    return {"id": conv.id, "customer_id": conv.customer_id, "agent_id": conv.agent_id,
            "status": conv.status, "priority": conv.priority, "tags": list(conv.tags or []),
            "metadata": dict(conv.meta or {}), "created_at": iso(conv.created_at),
            "last_message_at": iso(conv.last_message_at), "resolved_at": iso(conv.resolved_at),
            "assigned_at": iso(conv.assigned_at), "first_response_at": iso(conv.first_response_at),
            "rating": ({"score": conv.rating_score, "comment": conv.rating_comment}
                       if conv.rating_score is not None else None),
            **extra}


def message_json(msg: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"id": msg.id, "conversation_id": msg.conversation_id, "client_id": msg.client_id,
            "sender_id": msg.sender_id, "sender_type": msg.sender_type,
            "content": dict(msg.content or {}), "message_type": msg.message_type,
            "status": msg.status, "created_at": iso(msg.created_at),
            "updated_at": iso(msg.updated_at)}
    if msg.is_private:
        data["private"] = True
    return data
