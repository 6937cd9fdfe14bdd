"""Announcing that a user came online or went offline (PROTOCOL.md section 4, Presence)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broadcast import publish
from models import Conversation, User

OPEN = ("active", "waiting")


def presence_topics(session: Session, user_id: str) -> list[str]:
    """The user's own topic, each open conversation they take part in, and `agents` for agents."""
    topics = [f"user:{user_id}"]
    conv_ids = session.scalars(
        select(Conversation.id).where(
            or_(Conversation.customer_id == user_id, Conversation.agent_id == user_id),
            Conversation.status.in_(OPEN))).all()
    topics += [f"conversation:{cid}" for cid in conv_ids]
    role = session.scalar(select(User.role).where(User.id == user_id))
    if role == "agent":
        topics.append("agents")
    return topics


def announce(session: Session, user_id: str, online: bool,
             grace_seconds: float | None = None) -> None:
    """Presence events; for an agent, a dropped connection also means nothing new is
    assigned until they are back (their conversations wait out the grace period)."""
    from actions.chat_agents import connection_changed
    event = "user:online" if online else "user:offline"
    data = {"user_id": user_id, "timestamp": datetime.now(timezone.utc).isoformat()}
    for topic in presence_topics(session, user_id):
        publish(topic, event, data, ephemeral=True)
    if grace_seconds is None:
        from services import get_services
        grace_seconds = get_services().settings.agent_grace_seconds
    connection_changed(session, user_id, online, grace_seconds)
