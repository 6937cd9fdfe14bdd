"""Announcing that a user came online or went offline (PROTOCOL.md section 4, Presence).

`announce_many` takes a batch of changes (a burst of connects gives thousands)
and looks up roles and open conversations with one query each for the whole
batch, not a few queries per user.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import or_, select, text
from sqlalchemy.orm import Session

from actions.chat.agents import connection_changed
from broadcast import publish
from models import Conversation, User

OPEN = ("active", "waiting")
_OPEN_OF_PG = text(
    "SELECT id, customer_id, agent_id FROM conversations WHERE status IN ('active', 'waiting') "
    "AND (customer_id = ANY(CAST(:ids AS text[])) OR agent_id = ANY(CAST(:ids AS text[])))")
_CHUNK = 500  # ids per IN (...) list


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def presence_topics_many(session: Session, user_ids: Iterable[str],
                         roles: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Per user: each open conversation they take part in, and `agents` for agents.

    PROTOCOL.md section 4 names no other topic for presence; the user's own
    topic is not one (announcing on it cost a frame to every connecting
    client and a tenth of a connect's CPU, for no listener).

    `roles` are the users' roles where the caller knows them (a connection's
    token says); the others are read.
    """
    ids = list(dict.fromkeys(user_ids))
    topics: dict[str, list[str]] = {uid: [] for uid in ids}
    roles = dict(roles or {})
    postgres = session.get_bind().dialect.name == "postgresql"
    for chunk in _chunks(ids):
        # On PostgreSQL the ids go as one array: one statement text whatever the
        # batch's size, so neither SQLAlchemy nor psycopg parses it anew each time.
        rows = session.execute(_OPEN_OF_PG, {"ids": chunk}) if postgres else session.execute(
            select(Conversation.id, Conversation.customer_id, Conversation.agent_id).where(
                or_(Conversation.customer_id.in_(chunk), Conversation.agent_id.in_(chunk)),
                Conversation.status.in_(OPEN)))
        for cid, customer, agent in rows:
            for uid in (customer, agent):
                if uid in topics:
                    topics[uid].append(f"conversation:{cid}")
        unknown = [uid for uid in chunk if uid not in roles]
        if unknown:
            roles.update(session.execute(select(User.id, User.role).where(User.id.in_(unknown))).all())
    for uid in ids:
        if roles.get(uid) == "agent":
            topics[uid].append("agents")
    return topics


def announce_many(session: Session, changes: list[tuple[str, bool]], grace_seconds: float,
                  roles: dict[str, str] | None = None) -> None:
    """Publish each change in order; an agent's dropped connection also stops new assignments
    until they are back (their conversations wait out the grace period).

    The events go out when `session` commits: whoever hears `user:offline` and then asks
    for the agent finds them offline, not a state the announcement has not reached yet.
    """
    if not changes:
        return
    topics = presence_topics_many(session, (uid for uid, _ in changes), roles)
    for user_id, online in changes:
        event = "user:online" if online else "user:offline"
        data = {"user_id": user_id, "timestamp": datetime.now(UTC).isoformat()}
        for topic in topics[user_id]:
            publish(topic, event, data, ephemeral=True, session=session)
        if "agents" in topics[user_id]:
            connection_changed(session, user_id, online, grace_seconds)
