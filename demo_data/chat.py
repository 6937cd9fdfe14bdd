"""Demo agents and canned responses for `make run` (idempotent)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Agent, CannedResponse, User

AGENTS = [
    ("agent-ann", "Ann", ["en", "billing", "shipping"], 3),
    ("agent-somchai", "Somchai", ["th", "en", "returns"], 3),
    ("agent-mei", "Mei", ["en", "returns"], 2),
]
CANNED = {
    "hello": "Hello! Thanks for reaching out, how can I help?",
    "shipping": "Orders ship within 24 hours; you get a tracking link by e-mail.",
    "thanks": "Thank you for shopping with us. Anything else I can do?",
}


def seed(session: Session) -> None:
    for user_id, name, skills, limit in AGENTS:
        if session.get(User, user_id) is None:
            session.add(User(id=user_id, role="agent", name=name))
        if session.get(Agent, user_id) is None:
            session.add(Agent(user_id=user_id, name=name, email=f"{user_id}@shop.example",
                              skills=skills, concurrent_limit=limit, status="offline",
                              current_conversations=0))
    have = set(session.scalars(select(CannedResponse.shortcut)).all())
    for shortcut, text in CANNED.items():
        if shortcut not in have:
            session.add(CannedResponse(shortcut=shortcut, text=text, created_by="agent-ann"))
