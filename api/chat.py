"""HTTP API for chat (PROTOCOL.md section 4). Thin: parse, authorise, call the actions.

The WebSocket `emit` commands (realtime/chat_commands.py) take the same models
and call the same actions.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from actions import customers, routing
from actions.chat import agents as chat_agents
from actions.chat import conversations, messages, receipts
from actions.chat.access import access_conversation
from actions.chat.attachments import disposition, find_attachment, read_attachment, upload_attachment
from actions.chat.shapes import conversation_json
from api.auth import require
from api.errors import ApiError
from api.ids import ID
from api.openapi import body, multipart, query, responds
from api.stats import stats_section
from services import current_services

bp = Blueprint("chat", __name__, url_prefix="/api/v1")

# White space in a pattern's class, the union of three readings of `\s`, so that a pattern
# means the same to the schema's clients (ECMA, which adds \ufeff), to pydantic (Unicode's
# White_Space) and to the domain's str.strip() (which adds \x1c-\x1f). With `\s` alone,
# schemathesis sent an address with \x85 that the schema allowed and the server refused.
SPACE = r"\s\x1c-\x1f\x85\ufeff"
Id = Field(min_length=1, max_length=64, pattern=ID)


def run(fn: Callable[[Any], Any], retry_conflict: bool = False) -> Any:
    """Run `fn(session)` in one transaction (a ChatError is answered by api/errors.py).

    With `retry_conflict`, a unique-key race (two sends with one client_id) is
    retried once in a fresh transaction, which then finds the first row.
    """
    services = current_services()
    for attempt in (0, 1):
        try:
            with services.session() as session:
                return fn(session)
        except IntegrityError:
            if not retry_conflict or attempt:
                raise ApiError(409, "conflict", "a concurrent change won; try again") from None


# ---- schemas -------------------------------------------------------------------

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: Literal["web", "mobile", "facebook", "line"] = "web"
    initial_url: str | None = Field(default=None, max_length=2048)
    user_agent: str | None = Field(default=None, max_length=1024)
    language: str | None = Field(default=None, max_length=16)


class ConversationIn(Strict):
    tags: list[str] = Field(default_factory=list, max_length=20)
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    metadata: Metadata = Field(default_factory=Metadata)
    # Some character that is not white space: a blank first message is refused by the
    # schema, as the domain refuses it.
    text: str | None = Field(default=None, min_length=1, max_length=messages.MAX_TEXT,
                             pattern=rf"[^{SPACE}]")


class ConversationOut(BaseModel):
    id: str
    customer_id: str
    agent_id: str | None
    status: str
    priority: str
    tags: list[str]
    metadata: dict
    created_at: str
    last_message_at: str | None
    resolved_at: str | None


class ConversationList(BaseModel):
    conversations: list[dict]
    next_cursor: str | None


class ListParams(Strict):
    status: Literal["active", "waiting", "resolved", "archived"] | None = None
    limit: int = Field(default=20, ge=1, le=100)
    # A position in the list (created_at in microseconds, then the id), so any
    # cursor of this shape is a valid place to go on from.
    cursor: str | None = Field(default=None, pattern=r"^[0-9]{1,17}_[A-Za-z0-9_.:-]{1,64}$")


class Content(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, max_length=messages.MAX_TEXT)
    attachments: list[dict] = Field(default_factory=list, max_length=10)
    metadata: dict = Field(default_factory=dict)


class MessageIn(Strict):
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    message_type: Literal["text", "image", "file", "quick_reply"] = "text"
    content: Content
    private: bool = False


class MessageOut(BaseModel):
    id: str
    conversation_id: str
    client_id: str | None
    sender_id: str
    sender_type: str
    content: dict
    message_type: str
    status: str
    created_at: str
    updated_at: str


class HistoryParams(Strict):
    after: str | None = Field(default=None, max_length=64)
    before: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=50, ge=1, le=200)


class MessageRef(Strict):
    message_id: str = Id


class TransferIn(Strict):
    to_agent_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=ID)


class RatingIn(Strict):
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


_NOT_AT_OR_SPACE = rf"[^@{SPACE}]"


class AgentIn(Strict):
    name: str = Field(min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320,
                              pattern=rf"^{_NOT_AT_OR_SPACE}+@{_NOT_AT_OR_SPACE}+$")
    skills: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list,
                                                                              max_length=50)
    concurrent_limit: int = Field(default=3, ge=0, le=100)


class AgentOut(BaseModel):
    id: str
    name: str | None
    email: str | None
    status: str
    skills: list[str]
    concurrent_limit: int
    current_conversations: int
    response_time_avg: float | None
    satisfaction_rating: float | None


class AgentStatusIn(Strict):
    status: Literal["online", "busy", "offline"]


class CustomerIn(Strict):
    name: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    language: str | None = Field(default=None, max_length=16)
    is_vip: bool | None = None
    lifetime_value: float | None = Field(default=None, ge=0, le=999_999_999_999.99)   # NUMERIC(14, 2)


class CannedIn(Strict):
    text: str = Field(min_length=1, max_length=messages.MAX_TEXT)


# ---- conversations ----------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _encode_cursor(item: dict) -> str:
    at = datetime.fromisoformat(item["created_at"].replace("Z", "+00:00"))
    return f"{(at - _EPOCH) // _MICROSECOND}_{item['id']}"


def _decode_cursor(raw: str) -> tuple[datetime, str]:
    micros, cid = raw.split("_", 1)   # the shape is ListParams's pattern
    return _EPOCH + int(micros) * _MICROSECOND, cid


@bp.post("/conversations")
@require("customer")
@body(ConversationIn)
@responds(201, ConversationOut, "the conversation; routing starts")
def create_conversation(me, payload: ConversationIn):
    """Open a conversation (customer); `text` becomes the first message."""
    conv = run(lambda s: conversation_json(conversations.create_conversation(
        s, me, tags=payload.tags, priority=payload.priority,
        metadata=payload.metadata.model_dump(exclude_none=True), text=payload.text)))
    return conv, 201


@bp.get("/conversations")
@require()
@query(ListParams)
@responds(200, ConversationList)
def list_conversations(me, params: ListParams):
    """The caller's visible conversations, newest first (agents also see the waiting queue)."""
    cursor = _decode_cursor(params.cursor) if params.cursor else None
    items = run(lambda s: conversations.list_conversations(s, me, status=params.status,
                                                  limit=params.limit, cursor=cursor))
    nxt = _encode_cursor(items[-1]) if len(items) == params.limit else None
    return {"conversations": items, "next_cursor": nxt}


@bp.get("/conversations/<id:cid>")
@require()
@responds(200, ConversationOut)
def get_conversation(me, cid: str):
    """One conversation (participant, admin)."""

    presence = current_services().presence

    def fn(s):
        conv = access_conversation(s, me, cid)
        online = {"customer": bool(presence and presence.is_online(conv.customer_id)),
                  "agent": bool(presence and conv.agent_id and presence.is_online(conv.agent_id))}
        return conversation_json(conv, unread_count=conversations.unread_counts(s, me, [cid]).get(cid, 0),
                                      presence=online)
    return run(fn)


@bp.post("/conversations/<id:cid>/messages")
@require()
@body(MessageIn)
@responds(201, MessageOut, "the new message")
@responds(200, MessageOut, "a repeated client_id: the first message")
def post_message(me, cid: str, payload: MessageIn):
    """Send a message (participant); `private: true` is an agents-only note."""
    msg, created = send(me, cid, payload)
    return msg, 201 if created else 200


def send(me, cid: str, payload: MessageIn) -> tuple[dict, bool]:
    services = current_services()
    presence = services.presence
    try:
        return messages.send(services, me, cid, content=payload.content.model_dump(),
                             message_type=payload.message_type, client_id=payload.client_id,
                             private=payload.private,
                             is_online=presence.is_online if presence is not None else None)
    except IntegrityError:
        raise ApiError(409, "conflict", "a concurrent change won; try again") from None


@bp.get("/conversations/<id:cid>/messages")
@require()
@query(HistoryParams)
def get_messages(me, cid: str, params: HistoryParams):
    """History, oldest first; `after`/`before` are message ids."""
    found = run(lambda s: messages.history(s, me, cid, after=params.after, before=params.before,
                                           limit=params.limit))
    return {"messages": found}


@bp.post("/conversations/<id:cid>/read")
@require()
@body(MessageRef)
def read(me, cid: str, payload: MessageRef):
    """Mark a message and every one before it read for the caller."""
    return run(lambda s: receipts.mark_read(s, me, payload.message_id, cid), retry_conflict=True)


@bp.post("/conversations/<id:cid>/delivered")
@require()
@body(MessageRef)
def delivered(me, cid: str, payload: MessageRef):
    """The caller's client received a message."""
    return run(lambda s: receipts.mark_delivered(s, me, payload.message_id, cid), retry_conflict=True)


@bp.post("/conversations/<id:cid>/typing")
@require()
def typing(me, cid: str):
    """Ephemeral `user:typing` (throttled per user)."""
    services = current_services()
    return run(lambda s: conversations.typing(s, me, cid, services.settings.chat.typing_throttle_seconds,
                                     services.throttle))


@bp.post("/conversations/<id:cid>/join")
@require()
def join(me, cid: str):
    """`conversation:join` (the caller opened the conversation)."""
    return run(lambda s: conversations.join(s, me, cid))


@bp.post("/conversations/<id:cid>/leave")
@require()
def leave(me, cid: str):
    """`conversation:leave`."""
    return run(lambda s: conversations.leave(s, me, cid))


@bp.post("/conversations/<id:cid>/transfer")
@require("agent", "admin")
@body(TransferIn)
def transfer(me, cid: str, payload: TransferIn):
    """To a named agent, or with `to_agent_id: null` back to the queue (`agent:transfer`)."""
    return run(lambda s: conversation_json(routing.transfer(s, me, cid, payload.to_agent_id)))


@bp.post("/conversations/<id:cid>/take")
@require("agent")
@responds(200, ConversationOut, "assigned to the caller")
@responds(409, None, "not waiting any more (not_waiting), or the caller is not online with a free slot")
def take(me, cid: str):
    """An agent takes a waiting conversation from the queue (`agent:assigned`)."""
    return run(lambda s: conversation_json(routing.take(s, me, cid)))


@bp.post("/conversations/<id:cid>/resolve")
@require("agent", "admin")
def resolve(me, cid: str):
    """Resolved; the agent's slot is freed."""
    return run(lambda s: conversation_json(conversations.resolve(s, me, cid)))


@bp.post("/conversations/<id:cid>/archive")
@require("agent", "admin")
def archive(me, cid: str):
    """`conversation:archived`."""
    return run(lambda s: conversation_json(conversations.archive(s, me, cid)))


@bp.post("/conversations/<id:cid>/rating")
@require("customer")
@body(RatingIn)
def rating(me, cid: str, payload: RatingIn):
    """Satisfaction once resolved; a second rating is 409."""
    return run(lambda s: conversation_json(conversations.rate(s, me, cid, payload.score, payload.comment)))


# ---- attachments ---------------------------------------------------------------------

@bp.post("/conversations/<id:cid>/attachments")
@require()
@multipart("file")
@responds(201, description="stored: put its id in a message's content.attachments")
@responds(413, None, "over SB_ATTACHMENT_MAX_BYTES")
@responds(415, None, "its bytes are not of a type SB_ATTACHMENT_TYPES accepts")
def upload(me, cid: str):
    """Upload a file (multipart `file`) for this conversation; send it as `{"id": ...}` in a
    message's `content.attachments`. Its type is read from its bytes, not from the name."""
    services = current_services()
    f = request.files.get("file")
    if f is None or not f.filename:
        raise ApiError(400, "missing_file", "send the file as multipart form field 'file'")
    data = f.read(services.settings.chat.attachment_max_bytes + 1)
    return run(lambda s: upload_attachment(s, me, cid, f.filename, data, services.attachments,
                                           services.settings)), 201


@bp.get("/attachments/<id:aid>")
@require(allow_query=True)
def download(me, aid: str):
    """An attachment's bytes (participants of its conversation, admins): images inline,
    other files as downloads. An id's bytes never change, so a browser keeps them."""
    services = current_services()
    if request.if_none_match.contains(aid):
        run(lambda s: find_attachment(s, me, aid))   # still theirs to see
        return Response(status=304, headers={"ETag": f'"{aid}"'})
    att, data = run(lambda s: read_attachment(s, me, aid, services.attachments))
    return Response(data, mimetype=att["content_type"], headers={
        "Content-Disposition": disposition(att), "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox", "ETag": f'"{aid}"',
        "Cache-Control": "private, max-age=31536000, immutable"})


# ---- agents, customers, canned responses -------------------------------------------------

@bp.put("/agents/<id:aid>")
@require("admin")
@body(AgentIn)
@responds(200, AgentOut, "updated")
@responds(201, AgentOut, "created")
def put_agent(me, aid: str, payload: AgentIn):
    """Create or update an agent profile (admin)."""

    def fn(s):
        agent, created = chat_agents.put_agent(s, aid, name=payload.name, email=payload.email,
                                               skills=payload.skills,
                                               concurrent_limit=payload.concurrent_limit)
        return chat_agents.agent_json(agent), created
    agent, created = run(fn)
    return agent, 201 if created else 200


@bp.get("/agents")
@require("agent", "admin")
def get_agents(me):
    """All agents with their live load and the handling times learned from resolved conversations."""
    priors = routing.routing_priors(current_services().settings)
    return {"agents": run(lambda s: chat_agents.list_agents(s, routing.learn_handling(s, priors)))}


def _set_status(me, aid: str, status: str, create: bool) -> dict:
    grace = current_services().settings.chat.agent_grace_seconds
    return run(lambda s: chat_agents.agent_json(chat_agents.set_status(
        s, aid, status, name=me.name if create else None, grace_seconds=grace, create=create)))


@bp.put("/agents/me/status")
@require("agent")
@body(AgentStatusIn)
@responds(200, AgentOut)
def put_my_status(me, payload: AgentStatusIn):
    """The calling agent's status (`agent:available`); a first call creates the profile."""
    return _set_status(me, me.id, payload.status, create=True)


@bp.put("/agents/<id:aid>/status")
@require("admin")
@body(AgentStatusIn)
@responds(200, AgentOut)
def put_status(me, aid: str, payload: AgentStatusIn):
    """Any agent's status (admin)."""
    return _set_status(me, aid, payload.status, create=False)


@bp.put("/customers/<id:cust>")
@require("service", "admin")
@body(CustomerIn)
@responds(409, description="a concurrent change to the same customer won; try again")
def put_customer(me, cust: str, payload: CustomerIn):
    """The store's view of a customer (VIP, value, language), used by routing."""
    fields = payload.model_dump(exclude_unset=True)
    return run(lambda s: chat_agents.customer_json(chat_agents.put_customer(s, cust, fields)))


@bp.get("/customers/<id:cust>")
@require()
@responds(200, description="{customer, orders, reservations}: the profile, the newest orders, the holds")
@responds(403, None, "not an agent serving this customer (nor admin, nor the customer)")
def get_customer(me, cust: str):
    """One customer as the staff see them beside a chat: profile, orders, held reservations."""
    return run(lambda s: customers.customer_view(s, me, cust))


@bp.get("/canned-responses")
@require("agent", "admin")
def get_canned(me):
    """Canned responses (agent shortcuts)."""
    return {"canned_responses": run(chat_agents.list_canned)}


@bp.put("/canned-responses/<id:shortcut>")
@require("agent", "admin")
@body(CannedIn)
def put_canned(me, shortcut: str, payload: CannedIn):
    """Create or replace a canned response."""
    return run(lambda s: chat_agents.canned_json(chat_agents.put_canned(s, me, shortcut, payload.text)))


@bp.delete("/canned-responses/<id:shortcut>")
@require("admin")
@responds(204, description="removed")
def delete_canned(me, shortcut: str):
    """Remove a canned response (admin)."""
    run(lambda s: chat_agents.delete_canned(s, shortcut))
    return "", 204


@stats_section("chat")
def _chat_stats(session):
    return chat_agents.chat_stats(session)


@stats_section("routing")
def _routing_stats(session):
    return routing.routing_figures(session, current_services().settings)
