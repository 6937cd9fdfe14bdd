"""Smart routing (PROTOCOL.md section 4, Routing): who answers which waiting conversation.

The policy is pure (`priority_score`, `rank_agents`, `plan_next`) so the
routing simulation (bench/chat_routing_sim.py) replays exactly what runs here.

Capacity is guarded by the database, never by Python: an assignment is

    UPDATE agents SET current_conversations = current_conversations + 1
     WHERE user_id = :a AND status = 'online' AND current_conversations < concurrent_limit

followed by claiming the conversation (`... WHERE status = 'waiting' AND
agent_id IS NULL`), in one transaction. On PostgreSQL a racing UPDATE waits for
the row lock and re-checks its WHERE on the new row version, so however many
workers race, an agent never goes over its limit; a conversation claimed by
someone else gives the slot back in the same transaction. Each assignment is
its own transaction and locks agent then conversation, always in that order,
so two routings cannot deadlock.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from actions.chat import (ChatError, access_own_agent_or_admin, conversation_json, system_message,
                          topic)
from broadcast import publish
from models import Agent, Conversation, Customer, utcnow

PRIORITY_POINTS = {"low": 0.0, "medium": 5.0, "high": 15.0, "urgent": 30.0}


# ---- the policy (pure) ----------------------------------------------------------

def priority_score(*, vip: bool, waited_seconds: float, lifetime_value: float,
                   priority: str) -> float:
    """VIP +100; +1 per minute waited (at most 50); purchase value / 1000 (at most 30); priority."""
    return ((100.0 if vip else 0.0) + min(max(waited_seconds, 0.0) / 60.0, 50.0)
            + min(max(lifetime_value, 0.0) / 1000.0, 30.0) + PRIORITY_POINTS.get(priority, 5.0))


@dataclass
class WaitingItem:
    id: str
    score: float
    required: frozenset[str]
    vip: bool = False
    waited_seconds: float = 0.0
    since: float = 0.0           # tie-break: who waited first


@dataclass
class AgentSlot:
    id: str
    skills: frozenset[str]
    load: int
    limit: int
    response_time: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def free(self) -> bool:
        return self.load < self.limit

    @property
    def ratio(self) -> float:
        return self.load / self.limit if self.limit else 1.0


def required_skills(language: str | None, tags: Iterable[str] | None) -> frozenset[str]:
    need = {t.lower() for t in (tags or []) if isinstance(t, str)}
    if language:
        need.add(language.lower())
    return frozenset(need)


def rank_agents(required: frozenset[str], agents: Iterable[AgentSlot]) -> list[AgentSlot]:
    """Agents with a free slot: covering skills first, then lowest load ratio, then best response time."""
    free = [a for a in agents if a.free]
    return sorted(free, key=lambda a: (not required <= a.skills, -len(required & a.skills), a.ratio,
                                       a.response_time if a.response_time is not None else 1e9,
                                       a.id))


def plan_next(queue: list[WaitingItem], agents: list[AgentSlot], hold_seconds: float = 0.0,
              online_skills: list[frozenset[str]] | None = None,
              ) -> Iterable[tuple[WaitingItem, list[AgentSlot]]]:
    """Waiting conversations by score, each with its ranked agents.

    A non-VIP conversation whose skills no free agent covers waits up to
    `hold_seconds` for one who does, as long as some online agent (busy now)
    covers them: a mismatched agent takes 1.5x as long, and near capacity
    that lost time is what makes queues grow (bench/chat_routing_sim.py).
    A VIP takes the best agent free now. `online_skills`: the skill sets of
    every online agent, full or not (None: assume a covering agent exists).
    """
    for item in sorted(queue, key=lambda i: (-i.score, i.since, i.id)):
        ranked = rank_agents(item.required, agents)
        if not ranked:
            continue
        if (hold_seconds and not item.vip and not item.required <= ranked[0].skills
                and item.waited_seconds < hold_seconds
                and (online_skills is None or any(item.required <= s for s in online_skills))):
            continue
        yield item, ranked


# ---- the database side ----------------------------------------------------------

def _agent_slot(agent: Agent) -> AgentSlot:
    return AgentSlot(agent.user_id, frozenset(s.lower() for s in (agent.skills or [])),
                     agent.current_conversations, agent.concurrent_limit, agent.response_time_avg)


def waiting_queue(session: Session, now: datetime | None = None) -> list[WaitingItem]:
    now = now or utcnow()
    rows = session.execute(
        select(Conversation, Customer).outerjoin(Customer, Customer.user_id == Conversation.customer_id)
        .where(Conversation.status == "waiting", Conversation.agent_id.is_(None))).all()
    items = []
    for conv, customer in rows:
        since = conv.waiting_since or conv.created_at
        waited = (now - since).total_seconds()
        vip = bool(customer and customer.is_vip)
        language = (conv.meta or {}).get("language") or (customer.language if customer else None)
        items.append(WaitingItem(
            conv.id, priority_score(vip=vip, waited_seconds=waited,
                                    lifetime_value=float(customer.lifetime_value or 0) if customer else 0.0,
                                    priority=conv.priority),
            required_skills(language if isinstance(language, str) else None, conv.tags),
            vip, waited, since.timestamp()))
    return items


def available_agents(session: Session) -> list[AgentSlot]:
    agents = session.scalars(select(Agent).where(
        Agent.status == "online", Agent.current_conversations < Agent.concurrent_limit)).all()
    return [_agent_slot(a) for a in agents]


def try_assign(session: Session, conversation_id: str, agent_id: str) -> bool | None:
    """Take a slot of `agent_id` and claim the conversation (locks agent, then conversation).

    True: assigned. False: the agent has no free slot (or went offline).
    None: the conversation was no longer waiting; the slot is given back.
    """
    taken = session.execute(
        update(Agent).where(Agent.user_id == agent_id, Agent.status == "online",
                            Agent.current_conversations < Agent.concurrent_limit)
        .values(current_conversations=Agent.current_conversations + 1)
        .execution_options(synchronize_session=False)).rowcount
    if not taken:
        return False
    now = utcnow()
    claimed = session.execute(
        update(Conversation).where(Conversation.id == conversation_id,
                                   Conversation.status == "waiting", Conversation.agent_id.is_(None))
        .values(agent_id=agent_id, status="active", assigned_at=now, waiting_since=None)
        .execution_options(synchronize_session=False)).rowcount
    if not claimed:
        _release(session, agent_id)
        return None
    conv = session.get(Conversation, conversation_id)
    session.refresh(conv)
    agent = session.get(Agent, agent_id)
    name = (agent.name if agent else None) or agent_id
    system_message(session, conv, f"{name} joined the conversation", event="assigned",
                   agent_id=agent_id)
    data = {"conversation_id": conv.id, "agent_id": agent_id}
    publish(topic(conv.id), "agent:assigned", data, session=session)
    # The agent is not subscribed to the conversation yet: tell them on their own topic.
    publish(f"user:{agent_id}", "agent:assigned", {**data, "conversation": conversation_json(conv)},
            session=session)
    publish("agents", "agent:assigned", data, session=session)
    return True


def _release(session: Session, agent_id: str) -> None:
    session.execute(update(Agent).where(Agent.user_id == agent_id, Agent.current_conversations > 0)
                    .values(current_conversations=Agent.current_conversations - 1)
                    .execution_options(synchronize_session=False))


def free_slot(session: Session, agent_id: str) -> None:
    """Give back one of the agent's slots and route the waiting queue once this commits."""
    from tasks import enqueue_named
    _release(session, agent_id)
    enqueue_named("tasks.routing.route_waiting", session=session)


def _snapshot(session: Session) -> tuple[list[AgentSlot], list[WaitingItem], list[frozenset[str]]]:
    agents = available_agents(session)
    if not agents:
        return [], [], []
    online = [frozenset(s.lower() for s in (skills or [])) for skills in
              session.scalars(select(Agent.skills).where(Agent.status == "online")).all()]
    return agents, waiting_queue(session), online


def assign_next(session: Session, hold_seconds: float = 0.0) -> str | None:
    """One assignment of the best waiting conversation; its id, or None when nothing fits."""
    agents, queue, online = _snapshot(session)
    for item, ranked in plan_next(queue, agents, hold_seconds, online):
        for slot in ranked:
            result = try_assign(session, item.id, slot.id)
            if result:
                return item.id
            if result is None:
                break  # taken by another routing: next conversation
            slot.load = slot.limit  # full after all (stale snapshot): skip it from now on
    return None


def route_waiting(session_scope: Callable[[], AbstractContextManager[Session]],
                  hold_seconds: float = 0.0, max_assignments: int = 10_000) -> list[str]:
    """Assign waiting conversations, best first, until nothing fits.

    One snapshot of the queue and the agents serves a whole pass (scores move
    by minutes, not milliseconds); each assignment is still its own
    transaction with its own conditional updates, so a stale snapshot can
    only make an attempt fail, never over-assign. A pass that assigned
    something is followed by a fresh one.
    """
    assigned: list[str] = []
    while len(assigned) < max_assignments:
        with session_scope() as session:
            agents, queue, online = _snapshot(session)
        progress = False
        for item, ranked in plan_next(queue, agents, hold_seconds, online):
            for slot in ranked:
                with session_scope() as session:
                    result = try_assign(session, item.id, slot.id)
                if result:
                    slot.load += 1
                    assigned.append(item.id)
                    progress = True
                    break
                if result is None:
                    break
                slot.load = slot.limit
            if len(assigned) >= max_assignments:
                break
        if not progress:
            break
    return assigned


# ---- transfers and re-queueing ----------------------------------------------------

def transfer(session: Session, me: Any, conversation_id: str, to_agent_id: str | None) -> Conversation:
    """To a named agent (who must have a free slot) or, with None, back to the queue."""
    from tasks import enqueue_named
    conv = access_own_agent_or_admin(session, me, conversation_id)
    if conv.status not in ("active", "waiting"):
        raise ChatError(409, "conversation_closed", f"the conversation is {conv.status}")
    from_agent = conv.agent_id
    if to_agent_id is not None and to_agent_id == from_agent:
        raise ChatError(409, "same_agent", "the conversation is already with this agent")
    now = utcnow()
    if to_agent_id is not None:
        target = session.get(Agent, to_agent_id)
        if target is None:
            raise ChatError(404, "agent_not_found", f"no agent {to_agent_id!r}")
        taken = session.execute(
            update(Agent).where(Agent.user_id == to_agent_id, Agent.status.in_(("online", "busy")),
                                Agent.current_conversations < Agent.concurrent_limit)
            .values(current_conversations=Agent.current_conversations + 1)
            .execution_options(synchronize_session=False)).rowcount
        if not taken:
            raise ChatError(409, "agent_unavailable", f"agent {to_agent_id} is offline or at their limit")
        values = dict(agent_id=to_agent_id, status="active", assigned_at=now, waiting_since=None)
    else:
        if from_agent is None:
            raise ChatError(409, "already_waiting", "the conversation is already in the queue")
        values = dict(agent_id=None, status="waiting", waiting_since=now)
    claimed = session.execute(
        update(Conversation).where(Conversation.id == conv.id, Conversation.status == conv.status,
                                   Conversation.agent_id.is_(from_agent) if from_agent is None
                                   else Conversation.agent_id == from_agent)
        .values(**values).execution_options(synchronize_session=False)).rowcount
    if not claimed:
        raise ChatError(409, "conflict", "the conversation changed meanwhile; try again")
    session.refresh(conv)
    if from_agent:
        free_slot(session, from_agent)
    else:
        enqueue_named("tasks.routing.route_waiting", session=session)
    _announce_transfer(session, conv, from_agent, to_agent_id, by=me.id)
    return conv


def _announce_transfer(session: Session, conv: Conversation, from_agent: str | None,
                       to_agent: str | None, **meta: Any) -> None:
    text = (f"Transferred to {to_agent}" if to_agent else "Returned to the queue")
    system_message(session, conv, text, event="transfer", from_agent=from_agent,
                   to_agent=to_agent, **meta)
    data = {"conversation_id": conv.id, "from_agent": from_agent, "to_agent": to_agent}
    publish(topic(conv.id), "agent:transfer", data, session=session)
    publish("agents", "agent:transfer", data, session=session)
    if to_agent:
        publish(f"user:{to_agent}", "agent:transfer", {**data, "conversation": conversation_json(conv)},
                session=session)
    if from_agent:
        publish(f"user:{from_agent}", "agent:transfer", data, session=session)


def requeue(session: Session, conversation_id: str, agent_id: str, reason: str) -> bool:
    """Back to the queue, if still active with `agent_id` (conditional, so safe to repeat)."""
    now = utcnow()
    done = session.execute(
        update(Conversation).where(Conversation.id == conversation_id, Conversation.status == "active",
                                   Conversation.agent_id == agent_id)
        .values(agent_id=None, status="waiting", waiting_since=now, awaiting_reply_since=None)
        .execution_options(synchronize_session=False)).rowcount
    if not done:
        return False
    conv = session.get(Conversation, conversation_id)
    session.refresh(conv)
    free_slot(session, agent_id)
    _announce_transfer(session, conv, agent_id, None, reason=reason)
    return True


def release_offline_agent(session: Session, agent_id: str, grace_seconds: float,
                          now: datetime | None = None) -> list[str]:
    """After the grace period, an offline agent's conversations go back to routing."""
    now = now or utcnow()
    agent = session.get(Agent, agent_id)
    if (agent is None or agent.status != "offline" or agent.offline_since is None
            or agent.offline_since > now - timedelta(seconds=grace_seconds)):
        return []
    conv_ids = session.scalars(select(Conversation.id).where(
        Conversation.agent_id == agent_id, Conversation.status == "active")).all()
    return [cid for cid in conv_ids if requeue(session, cid, agent_id, "agent_offline")]


def offline_agents_past_grace(session: Session, grace_seconds: float,
                              now: datetime | None = None) -> list[str]:
    now = now or utcnow()
    return list(session.scalars(select(Agent.user_id).where(
        Agent.status == "offline", Agent.offline_since <= now - timedelta(seconds=grace_seconds),
        Agent.current_conversations > 0)).all())


def requeue_unanswered(session: Session, timeout_seconds: float,
                       now: datetime | None = None) -> list[str]:
    """Customer messages unanswered by the assigned agent for `timeout_seconds`: re-route (0 = off)."""
    if not timeout_seconds:
        return []
    now = now or utcnow()
    rows = session.execute(select(Conversation.id, Conversation.agent_id).where(
        Conversation.status == "active",
        Conversation.awaiting_reply_since <= now - timedelta(seconds=timeout_seconds))).all()
    return [cid for cid, aid in rows if aid and requeue(session, cid, aid, "unanswered")]
