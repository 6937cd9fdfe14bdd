"""Who may see a conversation, and who may write to it (404 / 403)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.chat.errors import ChatError
from models import Conversation

OPEN = ("active", "waiting")
CLOSED = ("resolved", "archived")


def access_conversation(session: Session, me: Any, conversation_id: str, *,
                        write: bool = False) -> Conversation:
    """The conversation if `me` may see it (write: take part in it); 404 / 403 otherwise.

    Agents may read the waiting queue (the console previews it) but write only
    to conversations assigned to them.
    """
    conv = session.scalars(select(Conversation).where(Conversation.id == conversation_id)).first()
    if conv is None:
        raise ChatError(404, "conversation_not_found", f"no conversation {conversation_id!r}")
    if me.role == "admin" or (me.role == "service" and not write):
        return conv
    if me.role == "customer" and conv.customer_id == me.id:
        return conv
    if me.role == "agent" and (conv.agent_id == me.id or (not write and conv.status == "waiting")):
        return conv
    raise ChatError(403, "not_participant", "you do not take part in this conversation")


def access_own_agent_or_admin(session: Session, me: Any, conversation_id: str) -> Conversation:
    conv = access_conversation(session, me, conversation_id, write=True)
    if me.role not in ("agent", "admin"):
        raise ChatError(403, "agents_only", "only its agent or an admin may do this")
    return conv
