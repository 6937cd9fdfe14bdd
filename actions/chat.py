"""Live chat (PROTOCOL.md section 4): conversations, messages, receipts, typing, notes.

Verbs in the Zulip manner: `access_*` fetches and checks who may, `do_*`
changes state and queues its events on the session (they go out after the
commit). `me` is anything with `.id` and `.role` (api.auth.Principal).
Nothing here imports Flask or Celery.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (String, and_, bindparam, exists, false, func, insert, literal_column, or_,
                        select, update)
from sqlalchemy.orm import Session

from actions.chat_errors import ChatError
from broadcast import publish
from broadcast.throttle import LocalThrottle
from models import Agent, Conversation, Customer, Message, MessageReceipt, new_id, utcnow
from models.chat import MESSAGE_TYPES, PRIORITIES
from models.types import UTCDateTime

OPEN = ("active", "waiting")
CLOSED = ("resolved", "archived")
STAFF = ("admin", "service")
MAX_TEXT = 10_000

__all__ = ["ChatError", "conversation_json", "message_json", "access_conversation",
           "create_conversation", "list_conversations", "send_message", "post_message",
           "send_customer_message_at_once", "history",
           "mark_read", "mark_delivered", "typing", "join", "leave", "resolve", "archive",
           "rate", "topic"]


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
    data = {"id": msg.id, "conversation_id": msg.conversation_id, "client_id": msg.client_id,
            "sender_id": msg.sender_id, "sender_type": msg.sender_type,
            "content": dict(msg.content or {}), "message_type": msg.message_type,
            "status": msg.status, "created_at": iso(msg.created_at),
            "updated_at": iso(msg.updated_at)}
    if msg.is_private:
        data["private"] = True
    return data


# ---- access ---------------------------------------------------------------

def is_staff(me: Any) -> bool:
    return me.role in STAFF


def access_conversation(session: Session, me: Any, conversation_id: str, *,
                        write: bool = False, lock: bool = False) -> Conversation:
    """The conversation if `me` may see it (write: take part in it); 404 / 403 otherwise.

    Agents may read the waiting queue (the console previews it) but write only
    to conversations assigned to them.
    """
    stmt = select(Conversation).where(Conversation.id == conversation_id)
    if lock:
        stmt = stmt.with_for_update()
    conv = session.scalars(stmt).first()
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


# ---- conversations ----------------------------------------------------------

def create_conversation(session: Session, me: Any, *, tags: list[str] | None = None,
                        priority: str = "medium", metadata: dict | None = None,
                        text: str | None = None) -> Conversation:
    """A customer opens a conversation; it waits for routing (enqueued after commit)."""
    from tasks import enqueue_named
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
        _insert_message(session, conv, me, "customer", "text", {"text": text}, None, False)
    publish("agents", "conversation:waiting", conversation_json(conv), session=session)
    enqueue_named("tasks.routing.route_conversation", conv.id, session=session)
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
    return [conversation_json(c, unread_count=unread.get(c.id, 0)) for c in convs]


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


# ---- messages ---------------------------------------------------------------

def validate_content(message_type: str, content: Any) -> dict[str, Any]:
    if message_type not in MESSAGE_TYPES or message_type == "system":
        allowed = ", ".join(t for t in MESSAGE_TYPES if t != "system")
        raise ChatError(400, "invalid_message_type", f"message_type must be one of {allowed}")
    if not isinstance(content, dict):
        raise ChatError(400, "invalid_content", "content must be an object {text, attachments, metadata}")
    text = content.get("text")
    if text is not None and not isinstance(text, str):
        raise ChatError(400, "invalid_content", "content.text must be a string")
    if text is not None and len(text) > MAX_TEXT:
        raise ChatError(400, "text_too_long", f"content.text is limited to {MAX_TEXT} characters")
    attachments = content.get("attachments") or []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise ChatError(400, "invalid_content", "content.attachments must be a list of objects")
    metadata = content.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ChatError(400, "invalid_content", "content.metadata must be an object")
    if message_type in ("text", "quick_reply") and not (text or "").strip():
        raise ChatError(400, "empty_message", "a text message needs content.text")
    if message_type in ("image", "file") and not attachments:
        raise ChatError(400, "missing_attachment", f"an {message_type} message needs attachments")
    return {"text": text, "attachments": attachments, "metadata": metadata}


def _insert_message(session: Session, conv: Conversation, sender: Any, sender_type: str,
                    message_type: str, content: dict[str, Any], client_id: str | None,
                    private: bool) -> Message:
    now = utcnow()
    msg = Message(id=new_id(), conversation_id=conv.id, client_id=client_id,
                  sender_id=sender.id if sender is not None else "system",
                  sender_type=sender_type, content=content, message_type=message_type,
                  status="sent", is_private=private, created_at=now, updated_at=now)
    session.add(msg)
    if not private:
        conv.last_message_at = now
    session.flush()
    if private:
        # Notes never touch the conversation's topic: its customer may read that.
        publish("agents", "message:note", message_json(msg), session=session)
    else:
        publish(topic(conv.id), "message:receive", message_json(msg), session=session)
    return msg


def system_message(session: Session, conv: Conversation, text: str, **metadata: Any) -> Message:
    return _insert_message(session, conv, None, "system", "system",
                           {"text": text, "attachments": [], "metadata": metadata}, None, False)


def send_message(session: Session, me: Any, conversation_id: str, *, content: Any,
                 message_type: str = "text", client_id: str | None = None,
                 private: bool = False,
                 is_online: Callable[[str], bool] | None = None) -> tuple[Message, bool]:
    """Store and broadcast a message; returns (message, created).

    A repeated `client_id` returns the first message and creates nothing; two
    racing sends with the same id meet the unique key, and the caller retries
    the whole call once (`api.chat`), finding the first.
    """
    if client_id is not None:
        existing = session.scalars(select(Message).where(
            Message.conversation_id == conversation_id, Message.client_id == client_id)).first()
        if existing is not None:
            access_conversation(session, me, conversation_id)
            if existing.sender_id != me.id:
                raise ChatError(409, "client_id_taken", "this client_id belongs to another sender")
            return existing, False
    conv = access_conversation(session, me, conversation_id, write=True)
    if private and me.role not in ("agent", "admin"):
        raise ChatError(403, "agents_only", "private notes are for agents and admins")
    if conv.status in CLOSED and not private:
        raise ChatError(409, "conversation_closed", f"the conversation is {conv.status}")
    content = validate_content(message_type, content)
    sender_type = "customer" if me.role == "customer" else "agent"
    msg = _insert_message(session, conv, me, sender_type, message_type, content, client_id, private)
    if private:
        return msg, True
    if sender_type == "customer":
        if conv.awaiting_reply_since is None:
            conv.awaiting_reply_since = msg.created_at
    else:
        conv.awaiting_reply_since = None
        if conv.agent_id == me.id:
            _first_response(session, conv, me.id, msg.created_at)
        _notify_if_offline(session, me, conv.id, conv.customer_id, msg.id, content, is_online)
    return msg, True


def _notify_if_offline(session: Session, me: Any, conversation_id: str, customer_id: str,
                       message_id: str, content: dict[str, Any],
                       is_online: Callable[[str], bool] | None) -> None:
    """An agent's answer reaches a customer with no live connection as a notification."""
    if is_online is not None and not is_online(customer_id):
        from actions.notify import notify
        notify(session, customer_id, "chat_message",
               {"conversation_id": conversation_id, "message_id": message_id,
                "sender_name": getattr(me, "name", None) or me.id,
                "text": (content.get("text") or "")[:200]})


def post_message(session: Session, me: Any, conversation_id: str, *, content: Any,
                 message_type: str = "text", client_id: str | None = None,
                 private: bool = False,
                 is_online: Callable[[str], bool] | None = None) -> tuple[dict[str, Any], bool]:
    """`send_message` as the API answers it: (the message's JSON, created).

    The common case, a customer's or the assigned agent's plain message, costs
    two Core statements (`_send_direct`): no ORM load, flush or unit of work.
    Anything else (admins, notes, a repeated client_id, an error to report)
    takes `send_message`, which checks and answers in PROTOCOL's order.
    """
    if not private:
        sent = _send_direct(session, me, conversation_id, content, message_type, client_id,
                            is_online)
        if sent is not None:
            return sent, True
    msg, created = send_message(session, me, conversation_id, content=content,
                                message_type=message_type, client_id=client_id,
                                private=private, is_online=is_online)
    return message_json(msg), created


_conv, _msg = Conversation.__table__, Message.__table__
_NOW = bindparam("now", type_=UTCDateTime())
# Inline constants: a bound IN list is expanded again on every execution.
_CLOSED_SQL = [literal_column(f"'{status}'", String()) for status in CLOSED]


def _participant_update(role: str, with_client_id: bool):
    """UPDATE the conversation the caller may write to; no row when they may not.

    No row also when the conversation is closed or `client_id` is taken:
    `send_message` then finds out which and answers as before.
    """
    c = _conv.c
    if role == "customer":
        stmt = update(_conv).where(c.customer_id == bindparam("me")).values(
            awaiting_reply_since=func.coalesce(c.awaiting_reply_since, _NOW))
    else:
        stmt = update(_conv).where(c.agent_id == bindparam("me")).values(
            awaiting_reply_since=None).returning(
            c.customer_id, c.first_response_at, c.assigned_at, c.created_at)
    stmt = stmt.where(c.id == bindparam("cid"), c.status.not_in(_CLOSED_SQL)).values(
        last_message_at=_NOW)
    if with_client_id:
        stmt = stmt.where(~exists().where(_msg.c.conversation_id == bindparam("cid"),
                                          _msg.c.client_id == bindparam("client_id")))
    return stmt


_PARTICIPANT_UPDATES = {(role, with_client_id): _participant_update(role, with_client_id)
                        for role in ("customer", "agent") for with_client_id in (False, True)}
_INSERT_MESSAGE = _msg.insert()


def _customer_send(with_client_id: bool):
    """WITH conv AS (UPDATE the customer's open conversation RETURNING id)
    INSERT the message FROM conv: no conversation row, no message."""
    conv = _participant_update("customer", with_client_id).returning(_conv.c.id).cte("conv")
    # Parameter names that are no column names: an UPDATE takes those as SET values.
    row = select(bindparam("mid", type_=String()), conv.c.id, bindparam("client_id", type_=String()),
                 bindparam("me", type_=String()), literal_column("'customer'", String()),
                 bindparam("body", type_=_msg.c.content.type),
                 bindparam("kind", type_=String()),
                 literal_column("'sent'", String()), false(), _NOW, _NOW).select_from(conv)
    return insert(_msg).from_select(
        ["id", "conversation_id", "client_id", "sender_id", "sender_type", "content",
         "message_type", "status", "is_private", "created_at", "updated_at"], row).add_cte(conv).returning(
        _msg.c.id)


_CUSTOMER_SENDS = {with_client_id: _customer_send(with_client_id) for with_client_id in (False, True)}


def send_customer_message_at_once(session: Session, me: Any, conversation_id: str, *,
                                  content: Any, message_type: str = "text",
                                  client_id: str | None = None) -> dict[str, Any] | None:
    """A customer's plain message as ONE statement (PostgreSQL); its JSON, or None.

    The statement is atomic by itself, so the caller may run it in an
    autocommit session: no BEGIN and COMMIT round trips. None means not this
    case (another database, a role, an error to report, a repeated client_id)
    and that nothing was written: the caller then takes `post_message` in a
    transaction, which answers as always.
    """
    if me.role != "customer" or session.get_bind().dialect.name != "postgresql":
        return None
    try:
        content = validate_content(message_type, content)
    except ChatError:
        return None
    now = utcnow()
    row = _message_row(me, conversation_id, content, message_type, client_id, now)
    done = session.connection().execute(_CUSTOMER_SENDS[client_id is not None], {
        "mid": row["id"], "cid": conversation_id, "client_id": client_id, "me": me.id,
        "body": content, "kind": message_type, "now": now}).first()
    if done is None:
        return None
    return _announce(session, row)


def _message_row(me: Any, conversation_id: str, content: dict[str, Any], message_type: str,
                 client_id: str | None, now: datetime) -> dict[str, Any]:
    """A participant's new plain message, as the row the one- and two-statement sends write."""
    return {"id": new_id(), "conversation_id": conversation_id, "client_id": client_id,
            "sender_id": me.id, "sender_type": "customer" if me.role == "customer" else "agent",
            "content": content, "message_type": message_type, "status": "sent",
            "is_private": False, "created_at": now, "updated_at": now}


def _announce(session: Session, row: dict[str, Any]) -> dict[str, Any]:
    """`message:receive` for a message written as a row, at commit; its JSON."""
    data = message_json(Message(**row))  # transient: the JSON's one shape, no ORM state
    publish(topic(row["conversation_id"]), "message:receive", data, session=session)
    return data


def _send_direct(session: Session, me: Any, conversation_id: str, content: Any,
                 message_type: str, client_id: str | None,
                 is_online: Callable[[str], bool] | None) -> dict[str, Any] | None:
    """A customer's or the assigned agent's message in two statements; None: not this case."""
    stmt = _PARTICIPANT_UPDATES.get((me.role, client_id is not None))
    if stmt is None:
        return None
    try:
        content = validate_content(message_type, content)
    except ChatError:
        return None  # reported by send_message, after the access checks as always
    now = utcnow()
    conn = session.connection()
    result = conn.execute(stmt, {"me": me.id, "cid": conversation_id, "now": now,
                                 "client_id": client_id})
    if me.role == "customer":
        if result.rowcount != 1:
            return None
        conv = None
    else:
        conv = result.first()
        if conv is None:
            return None
    row = _message_row(me, conversation_id, content, message_type, client_id, now)
    conn.execute(_INSERT_MESSAGE, row)
    data = _announce(session, row)
    if conv is not None:
        if conv.first_response_at is None:
            _record_first_response(session, conversation_id, conv.assigned_at or conv.created_at,
                                   me.id, now)
        _notify_if_offline(session, me, conversation_id, conv.customer_id, row["id"], content,
                           is_online)
    return data


def _first_response(session: Session, conv: Conversation, agent_id: str, at: datetime) -> None:
    if _record_first_response(session, conv.id, conv.assigned_at or conv.created_at, agent_id, at):
        conv.first_response_at = at


def _record_first_response(session: Session, conversation_id: str, since: datetime,
                           agent_id: str, at: datetime) -> bool:
    """Record the first answer once (conditional update) and fold it into the agent's average."""
    done = session.execute(update(Conversation)
                           .where(Conversation.id == conversation_id,
                                  Conversation.first_response_at.is_(None))
                           .values(first_response_at=at)
                           .execution_options(synchronize_session=False)).rowcount
    if not done:
        return False
    seconds = max(0.0, (at - since).total_seconds())
    session.execute(update(Agent).where(Agent.user_id == agent_id).values(
        response_time_avg=(func.coalesce(Agent.response_time_avg, 0.0) * Agent.responses_count
                           + seconds) / (Agent.responses_count + 1),
        responses_count=Agent.responses_count + 1).execution_options(synchronize_session=False))
    return True


def history(session: Session, me: Any, conversation_id: str, *, after: str | None = None,
            before: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Messages oldest first; `after`/`before` are message ids; alone, `limit` gives the latest."""
    access_conversation(session, me, conversation_id)
    stmt = select(Message).where(Message.conversation_id == conversation_id)
    if me.role == "customer":
        stmt = stmt.where(Message.is_private.is_(False))

    def anchor(message_id: str) -> Message:
        msg = session.get(Message, message_id)
        if msg is None or msg.conversation_id != conversation_id:
            raise ChatError(400, "invalid_cursor", f"no message {message_id!r} in this conversation")
        return msg

    if after:
        a = anchor(after)
        stmt = stmt.where(or_(Message.created_at > a.created_at,
                              and_(Message.created_at == a.created_at, Message.id > a.id)))
    if before:
        b = anchor(before)
        stmt = stmt.where(or_(Message.created_at < b.created_at,
                              and_(Message.created_at == b.created_at, Message.id < b.id)))
    if after and not before:
        rows = session.scalars(stmt.order_by(Message.created_at, Message.id).limit(limit)).all()
    else:
        rows = list(reversed(session.scalars(
            stmt.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)).all()))
    return [message_json(m) for m in rows]


# ---- receipts -----------------------------------------------------------------

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
    from actions.routing import free_slot
    conv = access_own_agent_or_admin(session, me, conversation_id)
    now = utcnow()
    done = session.execute(update(Conversation)
                           .where(Conversation.id == conv.id, Conversation.status.in_(OPEN))
                           .values(status="resolved", resolved_at=now, awaiting_reply_since=None)
                           .execution_options(synchronize_session=False)).rowcount
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
    from actions.routing import free_slot
    conv = access_own_agent_or_admin(session, me, conversation_id)
    was_open = conv.status in OPEN
    done = session.execute(update(Conversation)
                           .where(Conversation.id == conv.id, Conversation.status != "archived")
                           .values(status="archived", archived_at=utcnow(),
                                   awaiting_reply_since=None)
                           .execution_options(synchronize_session=False)).rowcount
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
    done = session.execute(update(Conversation)
                           .where(Conversation.id == conv.id, Conversation.rating_score.is_(None))
                           .values(rating_score=score, rating_comment=comment, rated_at=utcnow())
                           .execution_options(synchronize_session=False)).rowcount
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
