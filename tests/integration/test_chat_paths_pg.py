"""The chat send's two writers agree (PostgreSQL): random sequences, the same end.

`actions.chat.messages.send` writes a customer's plain message as one
statement on an autocommit connection, everything else (and whatever that one
statement did not write) with the UPDATE and the INSERT in a transaction. Here
each random sequence of sends (customers, the agent, an admin, strangers;
repeated client_ids, notes, bad content) mixed with transfers, resolves and
archives runs twice from the same start: once through `send`, once with every
message through the transaction path. The answers, the rows and the events
published must be the same, once ids and times are set aside.
"""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from actions import routing
from actions.chat import conversations, messages
from actions.chat.errors import ChatError
from api.auth import Principal
from models import Agent, Conversation, Message, utcnow
from settings import Settings
from tests.support.databases import fresh_pg_database


@pytest.fixture(scope="module")
def services():
    from app import create_app
    with fresh_pg_database("sb_chatpaths") as url:
        app = create_app(Settings.of(database_url=url, redis_url=None), background=False)
        yield app.extensions["switchboard"]


WHO = ("customer", "agent", "admin", "stranger", "other_agent")
SEND = st.tuples(st.just("send"), st.sampled_from(WHO), st.sampled_from([None, "c1", "c2"]),
                 st.sampled_from(["text", "empty", "note", "long"]))
# Sends three times as often as anything else: most sequences close the conversation early.
OPS = st.one_of(
    SEND, SEND, SEND,
    st.tuples(st.just("transfer"), st.sampled_from(["other_agent", None])),
    st.tuples(st.just("resolve")),
    st.tuples(st.just("archive")),
)


class World:
    """One copy of the start: a customer's conversation assigned to an agent, a second agent."""

    def __init__(self, services, tag: str) -> None:
        self.services, self.tag = services, tag
        self.ids = {"customer": f"{tag}-cust", "agent": f"{tag}-agent", "other_agent": f"{tag}-agent2",
                    "admin": f"{tag}-admin", "stranger": f"{tag}-stranger"}
        self.me = {"customer": Principal(self.ids["customer"], "customer"),
                   "agent": Principal(self.ids["agent"], "agent"),
                   "other_agent": Principal(self.ids["other_agent"], "agent"),
                   "admin": Principal(self.ids["admin"], "admin"),
                   "stranger": Principal(self.ids["stranger"], "customer")}
        self.cid = f"{tag}-conv"
        now = utcnow()
        with services.session() as s:
            for who in ("agent", "other_agent"):
                s.add(Agent(user_id=self.ids[who], name=who, status="online", concurrent_limit=5,
                            current_conversations=1 if who == "agent" else 0))
            s.add(Conversation(id=self.cid, customer_id=self.ids["customer"], agent_id=self.ids["agent"],
                               status="active", priority="medium", tags=[], meta={}, created_at=now,
                               assigned_at=now))

    def normal(self, value: Any) -> Any:
        """`value` with this world's ids written as roles and generated ids and times left out."""
        if isinstance(value, dict):
            return {k: self.normal(v) for k, v in value.items()
                    if k not in ("id", "message_id", "timestamp") and not k.endswith("_at")}
        if isinstance(value, list):
            return [self.normal(v) for v in value]
        if isinstance(value, str):
            return value.replace(self.tag, "W")
        return value


def _content(kind: str) -> tuple[dict, bool]:
    return {"text": {"empty": " ", "long": "x" * 10_001}.get(kind, f"hello {kind}")}, kind == "note"


def run(world: World, ops: list[tuple], at_once: bool) -> list:
    services, answers = world.services, []
    for op in ops:
        try:
            if op[0] == "send":
                _, who, client_id, kind = op
                content, private = _content(kind)
                me = world.me[who]
                if at_once:
                    data, created = messages.send(services, me, world.cid, content=content,
                                                  client_id=client_id, private=private)
                else:
                    with services.session() as s:
                        data, created = messages.send_in_transaction(
                            s, me, world.cid, content, "text", client_id, private, None)
                answers.append(("sent", created, world.normal(data)))
            elif op[0] == "transfer":
                to = world.ids[op[1]] if op[1] else None
                with services.session() as s:
                    routing.transfer(s, world.me["admin"], world.cid, to)
                answers.append(("transferred",))
            elif op[0] == "resolve":
                with services.session() as s:
                    conversations.resolve(s, world.me["admin"], world.cid)
                answers.append(("resolved",))
            else:
                with services.session() as s:
                    conversations.archive(s, world.me["admin"], world.cid)
                answers.append(("archived",))
        except ChatError as exc:
            answers.append(("refused", exc.status, exc.code))
    return answers


def state(world: World) -> tuple:
    with world.services.session() as s:
        conv = s.get(Conversation, world.cid)
        rows = s.scalars(select(Message).where(Message.conversation_id == world.cid)
                         .order_by(Message.created_at, Message.id)).all()
        agents = {who: s.get(Agent, world.ids[who]) for who in ("agent", "other_agent")}
        return (
            world.normal({"status": conv.status, "agent_id": conv.agent_id,
                          "awaiting": conv.awaiting_reply_since is not None,
                          "last_message": conv.last_message_at is not None,
                          "first_response": conv.first_response_at is not None}),
            [world.normal({"sender": m.sender_id, "type": m.sender_type, "client_id": m.client_id,
                           "content": m.content, "kind": m.message_type, "status": m.status,
                           "private": m.is_private}) for m in rows],
            {who: (a.current_conversations, a.responses_count) for who, a in agents.items()},
        )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, max_size=14))
def test_both_writers_store_and_publish_the_same(services, ops):
    events: list = []
    services.bus.attach(events.append)
    try:
        ends = []
        for at_once in (True, False):
            world = World(services, f"t{uuid.uuid4().hex[:10]}")
            events.clear()
            answers = run(world, ops, at_once)
            published = [(e.topic.replace(world.tag, "W"), e.name, world.normal(e.data))
                         for e in events if world.tag in e.topic or world.tag in e.frame]
            ends.append((answers, state(world), published))
        assert ends[0] == ends[1]
    finally:
        services.bus._listeners.remove(events.append)
