"""The chat's WebSocket commands (`emit`): the same models and actions as the HTTP API.

`message:send`, `message:read`, `message:delivered`, `user:typing`,
`conversation:join`, `conversation:leave`, `agent:available` (PROTOCOL.md
section 3); registered in the command registry (realtime/commands.py).
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from actions.chat import agents as chat_agents
from actions.chat import conversations, receipts
from api.chat import AgentStatusIn, Id, MessageIn, Strict, run, send
from api.ids import ID
from api.openapi import parse_body
from realtime.commands import CommandError, command
from services import current_services


class ConvRef(BaseModel):
    conversation_id: str = Id


class SendCmd(MessageIn):
    conversation_id: str = Id


class ReceiptCmd(Strict):
    message_id: str = Id
    conversation_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=ID)


@command("message:send")
def cmd_send(me, data: dict) -> dict:
    p = parse_body(SendCmd, data)
    msg, created = send(me, p.conversation_id, p)
    return {**msg, "duplicate": not created}


@command("message:read")
def cmd_read(me, data: dict) -> dict:
    p = parse_body(ReceiptCmd, data)
    return run(lambda s: receipts.mark_read(s, me, p.message_id, p.conversation_id), True)


@command("message:delivered")
def cmd_delivered(me, data: dict) -> dict:
    p = parse_body(ReceiptCmd, data)
    return run(lambda s: receipts.mark_delivered(s, me, p.message_id, p.conversation_id), True)


@command("user:typing")
def cmd_typing(me, data: dict) -> dict:
    p = parse_body(ConvRef, data)
    services = current_services()
    return run(lambda s: conversations.typing(s, me, p.conversation_id,
                                     services.settings.chat.typing_throttle_seconds, services.throttle))


@command("conversation:join")
def cmd_join(me, data: dict) -> dict:
    p = parse_body(ConvRef, data)
    return run(lambda s: conversations.join(s, me, p.conversation_id))


@command("conversation:leave")
def cmd_leave(me, data: dict) -> dict:
    p = parse_body(ConvRef, data)
    return run(lambda s: conversations.leave(s, me, p.conversation_id))


@command("agent:available")
def cmd_available(me, data: dict) -> dict:
    if me.role != "agent":
        raise CommandError("forbidden", "only agents set their status", 403)
    p = parse_body(AgentStatusIn, data)
    grace = current_services().settings.chat.agent_grace_seconds
    return run(lambda s: chat_agents.agent_json(chat_agents.set_status(
        s, me.id, p.status, name=me.name, grace_seconds=grace, create=True)))
