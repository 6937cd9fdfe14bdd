"""Conversations: open, list, typing, join and leave, resolve, archive, rate."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from actions.chat.access import CLOSED, OPEN, access_conversation, access_own_agent_or_admin
from actions.chat.errors import ChatError
from actions.chat.messages import send_in_transaction, system_message
from actions.chat.shapes import conversation_json, iso, topic
from actions.customers import summaries
from actions.effects import enqueue
from actions.routing import free_slot
from broadcast import publish
from broadcast.throttle import LocalThrottle
from models import Agent, Conversation, Customer, Message, MessageReceipt, new_id, utcnow
from models.session import rowcount
from models.chat import PRIORITIES


def create_conversation(session: Session, me: Any, *, tags: list[str] | None = None,
                        priority: str = "medium", metadata: dict | None = None,
                        text: str | None = None) -> Conversation:
    """A customer opens a conversation; it waits for routing (enqueued after commit)."""
    if me.role != "customer":
        raise ChatError(403, "customers_only", "only a customer opens a conversation")
    if priority not in PRIORITIES:
        raise ChatError(400, "invalid_priority", f"priority must be one of {', '.join(PRIORITIES)}")
    now = utcnow()
    meta = dict(metadata or {})
    if not meta.get("language"):
        customer = session.get(Customer, me.id)
        if customer is not None and customer.language:
            meta["language"] = customer.language
    conv = Conversation(id=new_id(), customer_id=me.id, status="waiting", priority=priority,
                        tags=list(tags or []), meta=meta, created_at=now, waiting_since=now)
    session.add(conv)
    session.flush()
    if text:
        send_in_transaction(session, me, conv.id, {"text": text}, "text", None, False, None)
        session.refresh(conv)   # the message moved the conversation on
    publish("agents", "conversation:waiting", conversation_json(conv), session=session)
    enqueue("tasks.routing.route_conversation", conv.id, session=session)
    return conv


def list_conversations(session: Session, me: Any, *, status: str | None = None, limit: int = 20,
                       cursor: tuple[datetime, str] | None = None) -> list[dict[str, Any]]:
    """The caller's visible conversations, newest first, with the caller's unread count."""
    stmt = select(Conversation)
    if me.role == "customer":
        stmt = stmt.where(Conversation.customer_id == me.id)
    elif me.role == "agent":
        stmt = stmt.where(or_(Conversation.agent_id == me.id, Conversation.status == "waiting"))
    if status:
        stmt = stmt.where(Conversation.status == status)
    if cursor:
        at, cid = cursor
        stmt = stmt.where(or_(Conversation.created_at < at,
                              and_(Conversation.created_at == at, Conversation.id < cid)))
    convs = session.scalars(stmt.order_by(Conversation.created_at.desc(), Conversation.id.desc())
                            .limit(limit)).all()
    unread = unread_counts(session, me, [c.id for c in convs])
    if me.role == "customer":
        return [conversation_json(c, unread_count=unread.get(c.id, 0)) for c in convs]
    people = summaries(session, {c.customer_id for c in convs})
    last = last_messages(session, [c.id for c in convs])
    return [conversation_json(c, unread_count=unread.get(c.id, 0), customer=people.get(c.customer_id),
                              last_message=last.get(c.id)) for c in convs]


def last_messages(session: Session, conversation_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each conversation's newest message between the customer and the agents (not notes,
    not the system's lines)."""
    if not conversation_ids:
        return {}
    ranked = (select(Message.conversation_id, Message.content, Message.sender_type, Message.created_at,
                     func.row_number().over(partition_by=Message.conversation_id,
                                            order_by=(Message.created_at.desc(), Message.id.desc()))
                     .label("n"))
              .where(Message.conversation_id.in_(conversation_ids), Message.is_private.is_(False),
                     Message.sender_type != "system")
              .subquery())
    rows = session.execute(select(ranked.c.conversation_id, ranked.c.content, ranked.c.sender_type,
                                  ranked.c.created_at).where(ranked.c.n == 1)).all()
    return {cid: {"text": (content or {}).get("text") or "", "sender_type": sender,
                  "created_at": iso(at)} for cid, content, sender, at in rows}


def unread_counts(session: Session, me: Any, conversation_ids: list[str]) -> dict[str, int]:
    if not conversation_ids:
        return {}
    read = select(MessageReceipt.id).where(MessageReceipt.message_id == Message.id,
                                           MessageReceipt.user_id == me.id,
                                           MessageReceipt.status == "read")
    stmt = (select(Message.conversation_id, func.count())
            .where(Message.conversation_id.in_(conversation_ids), Message.sender_id != me.id,
                   Message.sender_type != "system", ~read.exists())
            .group_by(Message.conversation_id))
    if me.role == "customer":
        stmt = stmt.where(Message.is_private.is_(False))
    return {cid: n for cid, n in session.execute(stmt).all()}


# ---- typing, join, leave ---------------------------------------------------------

# Without a shared one (tests, a single process), one per process.
_LOCAL_TYPING = LocalThrottle()


def typing(session: Session, me: Any, conversation_id: str, interval: float = 2.0,
           throttle: Any = None) -> dict[str, Any]:
    """`user:typing`, at most once per `interval` per user and conversation (`throttle`)."""
    conv = access_conversation(session, me, conversation_id, write=True)
    if not (throttle or _LOCAL_TYPING).allow(f"typing:{me.id}:{conv.id}", interval):
        return {"sent": False}
    publish(topic(conv.id), "user:typing", {"user_id": me.id, "conversation_id": conv.id},
            ephemeral=True)
    return {"sent": True}


def join(session: Session, me: Any, conversation_id: str) -> dict[str, Any]:
    conv = access_conversation(session, me, conversation_id, write=True)
    data = {"conversation_id": conv.id, "user_id": me.id}
    publish(topic(conv.id), "conversation:join", data, session=session)
    return data


def leave(session: Session, me: Any, conversation_id: str) -> dict[str, Any]:
    conv = access_conversation(session, me, conversation_id, write=True)
    data = {"conversation_id": conv.id, "user_id": me.id}
    publish(topic(conv.id), "conversation:leave", data, session=session)
    return data


# ---- resolve, archive, rating -------------------------------------------------------

def resolve(session: Session, me: Any, conversation_id: str) -> Conversation:
    """Resolved (conditional: once), the agent's slot freed and routed again."""
    conv = access_own_agent_or_admin(session, me, conversation_id)
    now = utcnow()
    done = rowcount(session.execute(update(Conversation)
                           .where(Conversation.id == conv.id, Conversation.status.in_(OPEN))
                           .values(status="resolved", resolved_at=now, awaiting_reply_since=None)
                           .execution_options(synchronize_session=False)))
    if not done:
        raise ChatError(409, "already_closed", f"the conversation is already {conv.status}")
    session.refresh(conv)
    if conv.agent_id:
        free_slot(session, conv.agent_id)
    system_message(session, conv, "Conversation resolved", event="resolved", by=me.id)
    publish(topic(conv.id), "conversation:resolved", conversation_json(conv), session=session)
    publish("agents", "conversation:resolved", {"conversation_id": conv.id,
                                                "agent_id": conv.agent_id}, session=session)
    return conv


def archive(session: Session, me: Any, conversation_id: str) -> Conversation:
    conv = access_own_agent_or_admin(session, me, conversation_id)
    was_open = conv.status in OPEN
    done = rowcount(session.execute(update(Conversation)
                           .where(Conversation.id == conv.id, Conversation.status != "archived")
                           .values(status="archived", archived_at=utcnow(),
                                   awaiting_reply_since=None)
                           .execution_options(synchronize_session=False)))
    if not done:
        raise ChatError(409, "already_archived", "the conversation is already archived")
    session.refresh(conv)
    if was_open and conv.agent_id:
        free_slot(session, conv.agent_id)
    publish(topic(conv.id), "conversation:archived", {"conversation_id": conv.id}, session=session)
    return conv


def rate(session: Session, me: Any, conversation_id: str, score: int,
         comment: str | None = None) -> Conversation:
    """The customer's satisfaction, once, after resolution; folded into the agent's rating."""
    conv = access_conversation(session, me, conversation_id, write=True)
    if me.role != "customer":
        raise ChatError(403, "customers_only", "only the conversation's customer rates it")
    if conv.resolved_at is None or conv.status not in CLOSED:
        raise ChatError(409, "not_resolved", "a conversation is rated once it is resolved")
    done = rowcount(session.execute(update(Conversation)
                           .where(Conversation.id == conv.id, Conversation.rating_score.is_(None))
                           .values(rating_score=score, rating_comment=comment, rated_at=utcnow())
                           .execution_options(synchronize_session=False)))
    if not done:
        raise ChatError(409, "already_rated", "this conversation has already been rated")
    if conv.agent_id:
        session.execute(update(Agent).where(Agent.user_id == conv.agent_id).values(
            satisfaction_rating=(func.coalesce(Agent.satisfaction_rating, 0.0) * Agent.ratings_count
                                 + score) / (Agent.ratings_count + 1),
            ratings_count=Agent.ratings_count + 1).execution_options(synchronize_session=False))
    session.refresh(conv)
    publish(topic(conv.id), "conversation:rated",
            {"conversation_id": conv.id, "score": score}, session=session)
    return conv
