"""Agent profiles and status, the store's customers, canned responses, chat figures."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from statistics import mean
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actions.chat.errors import ChatError
from actions.chat.shapes import iso
from actions.effects import enqueue
from actions.routing_stats import RoutingStats
from broadcast import publish
from models import AnalyticsEvent, Agent, CannedResponse, Conversation, Customer, User, utcnow
from models.chat import AGENT_STATUSES

AGENT_STATUS_EVENT = "agent_status"


def agent_json(agent: Agent) -> dict[str, Any]:
    return {"id": agent.user_id, "name": agent.name, "email": agent.email,
            "status": agent.status, "skills": list(agent.skills or []),
            "concurrent_limit": agent.concurrent_limit,
            "current_conversations": agent.current_conversations,
            "response_time_avg": agent.response_time_avg,
            "satisfaction_rating": agent.satisfaction_rating,
            "ratings_count": agent.ratings_count,
            "offline_since": iso(agent.offline_since)}


def ensure_user(session: Session, user_id: str, role: str, name: str | None = None) -> User:
    user = session.get(User, user_id)
    if user is None:
        user = User(id=user_id, role=role, name=name)
        session.add(user)
        session.flush()
    return user


def put_agent(session: Session, agent_id: str, *, name: str | None, email: str | None,
              skills: list[str], concurrent_limit: int) -> tuple[Agent, bool]:
    """Create or update a profile; a lowered limit never evicts conversations already held."""
    ensure_user(session, agent_id, "agent", name)
    found = session.get(Agent, agent_id)
    created = found is None
    agent = found if found is not None else Agent(user_id=agent_id, status="offline",
                                                   current_conversations=0)
    if created:
        session.add(agent)
    agent.name, agent.email = name, email
    agent.skills = list(dict.fromkeys(s.lower() for s in skills))
    agent.concurrent_limit = concurrent_limit
    session.flush()
    enqueue("tasks.routing.route_waiting", session=session)  # a raised limit frees slots
    return agent, created


def list_agents(session: Session, stats: RoutingStats | None = None) -> list[dict[str, Any]]:
    """Every agent; with `stats`, also their handling times learned from resolved conversations."""
    agents = session.scalars(select(Agent).order_by(Agent.user_id)).all()
    return [{**agent_json(a), **(stats.agent_json(a.user_id) if stats else {})} for a in agents]


def set_status(session: Session, agent_id: str, status: str, *, name: str | None = None,
               grace_seconds: float = 120, create: bool = False) -> Agent:
    """`agent:available`; online routes the queue; offline starts the grace period."""
    if status not in AGENT_STATUSES:
        raise ChatError(400, "invalid_status", f"status must be one of {', '.join(AGENT_STATUSES)}")
    agent = session.get(Agent, agent_id)
    if agent is None:
        if not create:
            raise ChatError(404, "agent_not_found", f"no agent {agent_id!r}")
        ensure_user(session, agent_id, "agent", name)
        agent = Agent(user_id=agent_id, name=name, skills=[], status="offline",
                      current_conversations=0, concurrent_limit=3)
        session.add(agent)
    previous = agent.status
    agent.status = status
    agent.resume_status = None
    record_status(session, agent_id, previous, status)
    if status == "offline":
        if previous != "offline" or agent.offline_since is None:
            agent.offline_since = utcnow()
        enqueue("tasks.routing.release_offline_agent", agent_id, session=session,
                      countdown=grace_seconds + 1)
    else:
        agent.offline_since = None
        agent.last_seen_at = utcnow()
    session.flush()
    publish("agents", "agent:available", {"agent_id": agent_id, "status": status}, session=session)
    if status == "online":
        enqueue("tasks.routing.route_waiting", session=session)
    return agent


def record_status(session: Session, agent_id: str, previous: str | None, status: str) -> None:
    """A change of an agent's status, kept for the dashboard's agents-online-over-the-day."""
    if previous != status:
        session.add(AnalyticsEvent(name=AGENT_STATUS_EVENT, subject_type="agent", subject_id=agent_id,
                                   data={"from": previous, "to": status}))


def connection_changed(session: Session, agent_id: str, online: bool,
                       grace_seconds: float = 120) -> None:
    """Presence: a dropped connection takes the agent offline (nothing new is assigned);
    coming back restores the status they had chosen."""
    agent = session.get(Agent, agent_id)
    if agent is None:
        return
    if not online and agent.status != "offline":
        record_status(session, agent_id, agent.status, "offline")
        agent.resume_status, agent.status, agent.offline_since = agent.status, "offline", utcnow()
        publish("agents", "agent:available", {"agent_id": agent_id, "status": "offline"},
                session=session)
        enqueue("tasks.routing.release_offline_agent", agent_id, session=session,
                      countdown=grace_seconds + 1)
    elif online and agent.resume_status:
        record_status(session, agent_id, agent.status, agent.resume_status)
        agent.status, agent.resume_status, agent.offline_since = agent.resume_status, None, None
        agent.last_seen_at = utcnow()
        publish("agents", "agent:available", {"agent_id": agent_id, "status": agent.status},
                session=session)
        enqueue("tasks.routing.route_waiting", session=session)


def put_customer(session: Session, customer_id: str, fields: dict[str, Any]) -> Customer:
    ensure_user(session, customer_id, "customer", fields.get("name"))
    customer = session.get(Customer, customer_id)
    if customer is None:
        customer = Customer(user_id=customer_id)
        session.add(customer)
    for key, value in fields.items():
        if key == "lifetime_value" and value is not None:
            value = Decimal(str(value))
        setattr(customer, key, value)
    session.flush()
    return customer


def customer_json(c: Customer) -> dict[str, Any]:
    return {"id": c.user_id, "name": c.name, "email": c.email, "phone": c.phone,
            "language": c.language, "is_vip": c.is_vip,
            "lifetime_value": float(c.lifetime_value or 0)}


# ---- canned responses ------------------------------------------------------------

def canned_json(c: CannedResponse) -> dict[str, Any]:
    return {"id": c.id, "shortcut": c.shortcut, "text": c.text, "created_by": c.created_by}


def list_canned(session: Session) -> list[dict[str, Any]]:
    return [canned_json(c) for c in
            session.scalars(select(CannedResponse).order_by(CannedResponse.shortcut)).all()]


def put_canned(session: Session, me: Any, shortcut: str, text: str) -> CannedResponse:
    canned = session.scalars(select(CannedResponse).where(CannedResponse.shortcut == shortcut)).first()
    if canned is None:
        canned = CannedResponse(shortcut=shortcut, text=text, created_by=me.id)
        session.add(canned)
    else:
        canned.text = text
    session.flush()
    return canned


def delete_canned(session: Session, shortcut: str) -> None:
    canned = session.scalars(select(CannedResponse).where(CannedResponse.shortcut == shortcut)).first()
    if canned is None:
        raise ChatError(404, "canned_not_found", f"no canned response {shortcut!r}")
    session.delete(canned)


# ---- figures ---------------------------------------------------------------------

def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return round(values[k], 3)


def _summary(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), "avg": round(mean(values), 3) if values else None,
            "p50": _pct(values, 50), "p90": _pct(values, 90), "p99": _pct(values, 99)}


FIRST_RESPONSE_GOAL_SECONDS = 120  # the plan's business goal: an answer within 2 minutes


def first_response_within_share(convs: list[Conversation], now: datetime,
                                seconds: float = FIRST_RESPONSE_GOAL_SECONDS) -> float | None:
    """Share of conversations answered within `seconds`, of those whose fate is known.

    One still unanswered past `seconds` has missed it; one younger and
    unanswered may still make it, so it is not counted either way.
    """
    met = decided = 0
    for c in convs:
        if c.first_response_at is not None:
            decided += 1
            met += (c.first_response_at - c.created_at).total_seconds() <= seconds
        elif (now - c.created_at).total_seconds() > seconds:
            decided += 1
    return round(met / decided, 3) if decided else None


def chat_stats(session: Session, recent: int = 5000) -> dict[str, Any]:
    """Waiting count, agents online, first-response and resolution times, CSAT, per agent."""
    waiting = session.scalar(select(func.count()).select_from(Conversation)
                             .where(Conversation.status == "waiting")) or 0
    active = session.scalar(select(func.count()).select_from(Conversation)
                            .where(Conversation.status == "active")) or 0
    agents = session.scalars(select(Agent)).all()
    convs = session.scalars(select(Conversation).order_by(Conversation.created_at.desc())
                            .limit(recent)).all()
    first = [(c.first_response_at - c.created_at).total_seconds() for c in convs if c.first_response_at]
    resolution = [(c.resolved_at - c.created_at).total_seconds() for c in convs if c.resolved_at]
    ratings = [c.rating_score for c in convs if c.rating_score is not None]
    return {
        "waiting": waiting, "active": active,
        "agents_online": sum(1 for a in agents if a.status == "online"),
        "agents_busy": sum(1 for a in agents if a.status == "busy"),
        "first_response_seconds": _summary(first),
        "first_response_within_2min_share": first_response_within_share(list(convs), utcnow()),
        "resolution_seconds": _summary(resolution),
        "csat": {"count": len(ratings), "avg": round(mean(ratings), 3) if ratings else None,
                 "satisfied_share": (round(sum(1 for r in ratings if r >= 4) / len(ratings), 3)
                                     if ratings else None)},
        "agents": [{"id": a.user_id, "status": a.status, "load": a.current_conversations,
                    "limit": a.concurrent_limit, "response_time_avg": a.response_time_avg,
                    "satisfaction_rating": a.satisfaction_rating} for a in agents],
    }
