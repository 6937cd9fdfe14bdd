"""Messages: `send` (one entry for every sender), system messages, history.

Every rule of a new message is written once, in the statement builder below:
who may write to the conversation (its customer, its assigned agent, an
admin), that it is still open (a note may go to a closed one), that a
repeated `client_id` writes nothing, what the message moves on the
conversation (`last_message_at`, `awaiting_reply_since`) and the row's
defaults. Two writers run those statements:

- `send_at_once`: a customer's plain message as ONE statement on
  PostgreSQL (`WITH conv AS (UPDATE ... RETURNING) INSERT ... FROM conv`),
  atomic by itself, so it runs on an autocommit connection with no BEGIN and
  COMMIT round trips and no ORM session: 19 % less CPU per send than two
  statements in a transaction (`bench/chat_send_cpu.py`, BENCHMARKS.md issue 12).
- `send_in_transaction`: the same UPDATE, then the INSERT, in the caller's
  transaction: every other sender, SQLite, and whatever the first did not
  write. When the UPDATE finds no row, `_refusal` says why (404, 403, 409,
  or the first message of a repeated `client_id`), in PROTOCOL's order.

`send` picks the writer; tests/integration/test_chat_paths_pg.py runs random
sequences of sends through both and compares what they stored and published.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (ColumnElement, Select, String, Table, Update, and_, bindparam, exists, func,
                        insert, literal_column, or_, select, update)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from actions.chat.access import CLOSED, access_conversation
from actions.chat.attachments import attachment_ids, resolve
from actions.chat.errors import ChatError
from actions.chat.platforms import platform_of
from actions.chat.shapes import message_json, topic
from actions.database import Database
from actions.effects import enqueue
from actions.notify import notify
from broadcast import publish
from models import Agent, Conversation, Message, new_id, utcnow
from models.session import committed_effect, rowcount
from models.chat import MESSAGE_TYPES
from models.types import UTCDateTime

MAX_TEXT = 10_000

IsOnline = Callable[[str], bool]


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
    if not isinstance(attachments, list):
        raise ChatError(400, "invalid_content", "content.attachments must be a list of objects")
    attachment_ids(attachments)
    metadata = content.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ChatError(400, "invalid_content", "content.metadata must be an object")
    # U+FEFF is blank too, as ECMA's \s (the schema's clients) and the first message's pattern say.
    if message_type in ("text", "quick_reply") and not (text or "").replace("\ufeff", "").strip():
        raise ChatError(400, "empty_message", "a text message needs content.text")
    if message_type in ("image", "file") and not attachments:
        raise ChatError(400, "missing_attachment", f"an {message_type} message needs attachments")
    return {"text": text, "attachments": attachments, "metadata": metadata}


# ---- the statement builder -------------------------------------------------------

_conv, _msg = cast(Table, Conversation.__table__), cast(Table, Message.__table__)
_NOW = bindparam("now", type_=UTCDateTime())
# Inline constants: a bound IN list is expanded again on every execution.
_CLOSED_SQL = [literal_column(f"'{status}'", String()) for status in CLOSED]
_RETURNED = (_conv.c.id, _conv.c.customer_id, _conv.c.agent_id, _conv.c.first_response_at,
             _conv.c.assigned_at, _conv.c.created_at)
# Who writes: the sender's kind, as the statements tell them apart.
CUSTOMER, AGENT, ADMIN, SYSTEM = "customer", "agent", "admin", "system"


def _kind(me: Any) -> str | None:
    return {"customer": CUSTOMER, "agent": AGENT, "admin": ADMIN}.get(me.role)


def _conversation_update(kind: str, private: bool, with_client_id: bool) -> Select | Update:
    """The conversation a message of `kind` goes to, changed as the message changes it;
    no row when the sender may not write there. Params: cid, me, now, client_id."""
    c = _conv.c
    where: list[ColumnElement[bool]] = [c.id == bindparam("cid")]
    if kind == CUSTOMER:
        where.append(c.customer_id == bindparam("me"))
    elif kind == AGENT:
        where.append(c.agent_id == bindparam("me"))
    if with_client_id:
        where.append(~exists().where(_msg.c.conversation_id == bindparam("cid"),
                                     _msg.c.client_id == bindparam("client_id")))
    if private:   # a note moves nothing on the conversation: the row is only locked
        return select(*_RETURNED).where(*where).with_for_update()
    if kind != SYSTEM:   # the system writes to a conversation it has just closed
        where.append(c.status.not_in(_CLOSED_SQL))
    values: dict[str, Any] = {"last_message_at": _NOW}
    if kind == CUSTOMER:
        values["awaiting_reply_since"] = func.coalesce(c.awaiting_reply_since, _NOW)
    elif kind in (AGENT, ADMIN):
        values["awaiting_reply_since"] = None
    return update(_conv).where(*where).values(**values).returning(*_RETURNED)


_UPDATES = {(kind, private, with_client_id): _conversation_update(kind, private, with_client_id)
            for kind in (CUSTOMER, AGENT, ADMIN, SYSTEM) for private in (False, True)
            for with_client_id in (False, True)}
_INSERT = _msg.insert()


def message_row(conversation_id: str, sender_id: str, sender_type: str, message_type: str,
                content: dict[str, Any], client_id: str | None, private: bool,
                now: datetime) -> dict[str, Any]:
    """A new message's row, defaults included: what both writers insert."""
    return {"id": new_id(), "conversation_id": conversation_id, "client_id": client_id,
            "sender_id": sender_id, "sender_type": sender_type, "content": content,
            "message_type": message_type, "status": "sent", "is_private": private,
            "created_at": now, "updated_at": now}


def _at_once_statement(with_client_id: bool):
    """WITH conv AS (the customer's conversation update) INSERT the message FROM conv:
    no conversation row, no message."""
    conv = _UPDATES[(CUSTOMER, False, with_client_id)].cte("conv")
    columns = [c.name for c in _msg.columns]
    # Parameter names that are no column names: an UPDATE takes those as SET values.
    values: dict[str, ColumnElement[Any]] = {
        name: bindparam(f"m_{name}", type_=_msg.c[name].type) for name in columns}
    values["conversation_id"] = conv.c.id
    return insert(_msg).from_select(columns, select(*values.values()).select_from(conv)) \
        .add_cte(conv).returning(_msg.c.id)


_AT_ONCE = {with_client_id: _at_once_statement(with_client_id) for with_client_id in (False, True)}


# ---- sending -----------------------------------------------------------------------

def send(db: Database, me: Any, conversation_id: str, *, content: Any, message_type: str = "text",
         client_id: str | None = None, private: bool = False,
         is_online: IsOnline | None = None) -> tuple[dict[str, Any], bool]:
    """Store and broadcast a message; returns (its JSON, created).

    A repeated `client_id` returns the first message and creates nothing. Two
    racing sends with the same id both pass the check and meet the unique key:
    the one that lost goes again, once, and finds the first.
    """
    engine = db.autocommit_engine
    if me.role == "customer" and not private and engine is not None \
            and engine.dialect.name == "postgresql":
        try:
            with db.autocommit_connection() as conn:
                sent = send_at_once(conn, me, conversation_id, content, message_type, client_id)
        except IntegrityError:
            sent = None
        if sent is not None:
            return sent, True
    for last in (False, True):
        try:
            with db.session() as session:
                return send_in_transaction(session, me, conversation_id, content, message_type,
                                            client_id, private, is_online)
        except IntegrityError:
            if last or client_id is None:
                raise
    raise AssertionError("unreachable")


def send_at_once(conn: Connection, me: Any, conversation_id: str, content: Any,
                  message_type: str, client_id: str | None) -> dict[str, Any] | None:
    """A customer's plain message as one statement on `conn` (PostgreSQL, autocommit); its
    JSON, or None when it wrote nothing (a refusal to explain, a repeated client_id)."""
    try:
        content = validate_content(message_type, content)
    except ChatError:
        return None
    if content["attachments"]:
        return None   # named by id: the reference path looks them up in its transaction
    now = utcnow()
    row = message_row(conversation_id, me.id, "customer", message_type, content, client_id, False, now)
    params = {f"m_{name}": value for name, value in row.items()}
    params.update(cid=conversation_id, me=me.id, client_id=client_id, now=now)
    if conn.execute(_AT_ONCE[client_id is not None], params).first() is None:
        return None
    return _announce(row)   # committed with the statement: announced now


def send_in_transaction(session: Session, me: Any, conversation_id: str, content: Any,
                         message_type: str, client_id: str | None, private: bool,
                         is_online: IsOnline | None) -> tuple[dict[str, Any], bool]:
    kind = _kind(me)
    try:
        content = validate_content(message_type, content)
        invalid = None
    except ChatError as exc:
        invalid = exc
    conv = None
    now = utcnow()
    if invalid is None and kind is not None and (not private or kind != CUSTOMER):
        conv = session.execute(_UPDATES[(kind, private, client_id is not None)],
                               {"cid": conversation_id, "me": me.id, "now": now,
                                "client_id": client_id}).first()
    if conv is None:
        first = _refusal(session, me, conversation_id, client_id, private)
        if first is not None:
            return message_json(first), False
        raise invalid or ChatError(409, "conversation_changed", "the conversation changed; retry")
    if content["attachments"]:
        content = {**content, "attachments": resolve(session, conversation_id, message_type,
                                                     content["attachments"])}
    row = message_row(conversation_id, me.id, "customer" if kind == CUSTOMER else "agent",
                      message_type, content, client_id, private, now)
    session.execute(_INSERT, row)
    data = _announce(row, session)
    if kind != CUSTOMER and not private:
        if conv.agent_id == me.id and conv.first_response_at is None:
            record_first_response(session, conversation_id, conv.assigned_at or conv.created_at,
                                  me.id, now)
        if platform_of(conv.customer_id) is not None:   # they read it in LINE or Messenger
            enqueue("tasks.notifications.send_platform_message", row["id"], session=session)
        else:
            _notify_if_offline(session, me, conversation_id, conv.customer_id, row["id"], content,
                               is_online)
    return data, True


def _refusal(session: Session, me: Any, conversation_id: str, client_id: str | None,
             private: bool) -> Message | None:
    """Why the conversation update found no row: the first message of a repeated
    `client_id` (returned), or the refusal (raised), in PROTOCOL's order."""
    if client_id is not None:
        first = session.scalars(select(Message).where(
            Message.conversation_id == conversation_id, Message.client_id == client_id)).first()
        if first is not None:
            access_conversation(session, me, conversation_id)
            if first.sender_id != me.id:
                raise ChatError(409, "client_id_taken", "this client_id belongs to another sender")
            return first
    conv = access_conversation(session, me, conversation_id, write=True)
    if private and me.role not in ("agent", "admin"):
        raise ChatError(403, "agents_only", "private notes are for agents and admins")
    if conv.status in CLOSED and not private:
        raise ChatError(409, "conversation_closed", f"the conversation is {conv.status}")
    return None


def system_message(session: Session, conv: Conversation, text: str, **metadata: Any) -> dict[str, Any]:
    """A message from the system in `conv` (open or just closed); its JSON."""
    now = utcnow()
    session.execute(_UPDATES[(SYSTEM, False, False)], {"cid": conv.id, "now": now})
    # The caller's object shows what the statement wrote, without another UPDATE of its own.
    set_committed_value(conv, "last_message_at", now)
    row = message_row(conv.id, "system", "system", "system",
                      {"text": text, "attachments": [], "metadata": metadata}, None, False, now)
    session.execute(_INSERT, row)
    return _announce(row, session)


def _announce(row: dict[str, Any], session: Session | None = None) -> dict[str, Any]:
    """The new message's event, once `session` commits (a note only to the agents: its
    customer may read the conversation's topic); its JSON."""
    data = message_json(Message(**row))  # transient: the JSON's one shape, no ORM state
    where, event = ("agents", "message:note") if row["is_private"] else \
        (topic(row["conversation_id"]), "message:receive")
    if session is not None:
        publish(where, event, data, session=session)
    else:   # committed already: a failure to announce must not fail the send
        committed_effect(publish, where, event, data)
    return data


def _notify_if_offline(session: Session, me: Any, conversation_id: str, customer_id: str,
                       message_id: str, content: dict[str, Any], is_online: IsOnline | None) -> None:
    """An answer reaches a customer with no live connection as a notification."""
    if is_online is not None and not is_online(customer_id):
        notify(session, customer_id, "chat_message",
               {"conversation_id": conversation_id, "message_id": message_id,
                "sender_name": getattr(me, "name", None) or me.id,
                "text": (content.get("text") or "")[:200]})


def record_first_response(session: Session, conversation_id: str, since: datetime,
                          agent_id: str, at: datetime) -> bool:
    """Record the first answer once (conditional update) and fold it into the agent's average."""
    done = rowcount(session.execute(update(Conversation)
                           .where(Conversation.id == conversation_id,
                                  Conversation.first_response_at.is_(None))
                           .values(first_response_at=at)
                           .execution_options(synchronize_session=False)))
    if not done:
        return False
    seconds = max(0.0, (at - since).total_seconds())
    session.execute(update(Agent).where(Agent.user_id == agent_id).values(
        response_time_avg=(func.coalesce(Agent.response_time_avg, 0.0) * Agent.responses_count
                           + seconds) / (Agent.responses_count + 1),
        responses_count=Agent.responses_count + 1).execution_options(synchronize_session=False))
    return True


# ---- history ----------------------------------------------------------------------

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
