"""Smart routing (PROTOCOL.md section 4, Routing): who answers which waiting conversation.

The policy is pure (actions/routing_policy.py: `priority_score`, `rank_agents`,
`plan_next` and its derived hold) and learns handling times from resolved
conversations (actions/routing_stats.py), so the routing simulation
(bench/chat_routing_sim.py) replays exactly what runs here. This module is
the database side: the snapshot the policy is given, and the assignment.

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

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from actions.chat.access import access_own_agent_or_admin
from actions.chat.errors import ChatError
from actions.chat.messages import system_message
from actions.chat.shapes import conversation_json, topic
from actions.effects import enqueue
from actions.routing_policy import (PRIORITY_POINTS, AgentSlot, HoldDecision, VipGoal, WaitingItem,
                                    hold_decision, plan_next, priority_score, rank_agents,
                                    required_skills, vip_reserve)
from actions.routing_stats import LearnedCache, Priors, RoutingStats, learn_from_db, learn_handling, observe_now
from broadcast import publish
from models import Agent, Conversation, Customer, utcnow
from models.session import rowcount

__all__ = ["PRIORITY_POINTS", "AgentSlot", "HoldDecision", "VipGoal", "WaitingItem",
           "hold_decision", "plan_next", "priority_score", "rank_agents", "required_skills",
           "vip_reserve", "Priors",
           "RoutingStats", "LearnedCache", "learn_from_db", "learn_handling", "routing_config", "routing_priors",
           "routing_figures", "waiting_queue", "online_agents", "try_assign",
           "free_slot", "route_waiting", "transfer", "requeue",
           "release_offline_agent", "offline_agents_past_grace", "requeue_unanswered"]

# ---- the database side ----------------------------------------------------------

# The defaults of `route_waiting` (both frozen).
_PRIORS, _GOAL = Priors(), VipGoal()


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


def online_agents(session: Session) -> list[AgentSlot]:
    """Every online agent with their load: the full ones are where a held conversation's slot comes from."""
    return [_agent_slot(a) for a in session.scalars(
        select(Agent).where(Agent.status == "online").order_by(Agent.user_id)).all()]


def try_assign(session: Session, conversation_id: str, agent_id: str,
               statuses: tuple[str, ...] = ("online",)) -> bool | None:
    """Take a slot of `agent_id` and claim the conversation (locks agent, then conversation).

    Routing assigns to online agents; an agent taking one themself may be busy too.

    True: assigned. False: the agent has no free slot (or went offline).
    None: the conversation was no longer waiting; the slot is given back.
    """
    taken = rowcount(session.execute(
        update(Agent).where(Agent.user_id == agent_id, Agent.status.in_(statuses),
                            Agent.current_conversations < Agent.concurrent_limit)
        .values(current_conversations=Agent.current_conversations + 1)
        .execution_options(synchronize_session=False)))
    if not taken:
        return False
    now = utcnow()
    claimed = rowcount(session.execute(
        update(Conversation).where(Conversation.id == conversation_id,
                                   Conversation.status == "waiting", Conversation.agent_id.is_(None))
        # A message the customer wrote while queued waits for an answer from now on:
        # the agent has had no time to give one (the unanswered re-route counts from here).
        .values(agent_id=agent_id, status="active", assigned_at=now, waiting_since=None,
                awaiting_reply_since=case((Conversation.awaiting_reply_since.is_(None), None),
                                          else_=now))
        .execution_options(synchronize_session=False)))
    if not claimed:
        _release(session, agent_id)
        return None
    conv = _claimed(session, conversation_id)
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


def take(session: Session, me: Any, conversation_id: str) -> Conversation:
    """An agent takes a waiting conversation from the queue themself: the same conditional
    claim as routing's, so never past their limit and never one another agent got first."""
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        raise ChatError(404, "conversation_not_found", f"no conversation {conversation_id!r}")
    if conv.status != "waiting":
        raise ChatError(409, "not_waiting", f"the conversation is {conv.status}, not waiting")
    taken = try_assign(session, conversation_id, me.id, statuses=("online", "busy"))
    if taken is False:
        raise ChatError(409, "agent_unavailable",
                        "be online or busy, with a free slot under your limit, to take a conversation")
    if taken is None:
        raise ChatError(409, "not_waiting", "another agent took it first")
    return _claimed(session, conversation_id)


def _release(session: Session, agent_id: str) -> None:
    session.execute(update(Agent).where(Agent.user_id == agent_id, Agent.current_conversations > 0)
                    .values(current_conversations=Agent.current_conversations - 1)
                    .execution_options(synchronize_session=False))


def _claimed(session: Session, conversation_id: str) -> Conversation:
    """The conversation a conditional update has just changed, read again."""
    conv = session.get(Conversation, conversation_id, populate_existing=True)
    assert conv is not None, "a conversation the update matched exists"
    return conv


def free_slot(session: Session, agent_id: str) -> None:
    """Give back one of the agent's slots and route the waiting queue once this commits."""
    _release(session, agent_id)
    enqueue("tasks.routing.route_waiting", session=session)


def routing_priors(settings: Any) -> Priors:
    return Priors(settings.routing.handle_prior_seconds, settings.routing.mismatch_prior,
                  settings.routing.prior_weight)


def routing_config(settings: Any) -> tuple[Priors | None, VipGoal]:
    """The priors (None: hold off) and the VIP goal from settings.py, for the worker and the simulation."""
    return (routing_priors(settings) if settings.routing.hold else None,
            VipGoal(settings.routing.vip_wait_goal_seconds,
                    reserve_share=settings.routing.vip_reserve_share))


def routing_figures(session: Session, settings: Any) -> dict[str, Any]:
    """GET /api/v1/stats `routing`: learned handling times per skill, arrival rates, VIP reserve now."""
    _, goal = routing_config(settings)
    stats = learn_from_db(session, routing_priors(settings))
    agents = online_agents(session)
    return {**stats.json(), "vip_rate_per_hour": round(stats.vip_rate * 3600, 1),
            "arrival_rate_per_hour": round(stats.arrival_rate * 3600, 1),
            "vip_reserve": vip_reserve(agents, stats, goal) if agents else 0}


def _snapshot(session: Session, priors: Priors | None, cache: LearnedCache | None = None
              ) -> tuple[list[AgentSlot], list[WaitingItem], RoutingStats | None]:
    agents = online_agents(session)
    if not any(a.free for a in agents):
        return [], [], None
    queue = waiting_queue(session)
    if priors is None or not queue:  # nothing to decide: the common pass learns nothing
        return agents, queue, None
    handling = cache.get(session, priors) if cache else learn_handling(session, priors)
    return agents, queue, observe_now(session, handling)


def route_waiting(session_scope: Callable[[], AbstractContextManager[Session]],
                  priors: Priors | None = _PRIORS, goal: VipGoal = _GOAL,
                  cache: LearnedCache | None = None, max_assignments: int = 10_000) -> list[str]:
    """Assign waiting conversations, best first, until nothing fits.

    `priors`: what the learned handling times start from; None turns the
    derived hold off (every conversation takes the best agent free now).
    `goal`: the VIP wait the VIP reserve is sized for. `cache`: handling
    times kept between passes (the worker's, one per process); None reads
    them every pass.
    One snapshot of the queue, the agents and the learned handling times
    serves a whole pass (scores move by minutes, not milliseconds); each
    assignment is still its own transaction with its own conditional
    updates, so a stale snapshot can only make an attempt fail, never
    over-assign. A pass that assigned something is followed by a fresh one.
    """
    assigned: list[str] = []
    while len(assigned) < max_assignments:
        with session_scope() as session:
            agents, queue, stats = _snapshot(session, priors, cache)
        progress = False
        for item, ranked in plan_next(queue, agents, stats, goal):
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
        taken = rowcount(session.execute(
            update(Agent).where(Agent.user_id == to_agent_id, Agent.status.in_(("online", "busy")),
                                Agent.current_conversations < Agent.concurrent_limit)
            .values(current_conversations=Agent.current_conversations + 1)
            .execution_options(synchronize_session=False)))
        if not taken:
            raise ChatError(409, "agent_unavailable", f"agent {to_agent_id} is offline or at their limit")
        values = dict(agent_id=to_agent_id, status="active", assigned_at=now, waiting_since=None)
    else:
        if from_agent is None:
            raise ChatError(409, "already_waiting", "the conversation is already in the queue")
        values = dict(agent_id=None, status="waiting", waiting_since=now)
    claimed = rowcount(session.execute(
        update(Conversation).where(Conversation.id == conv.id, Conversation.status == conv.status,
                                   Conversation.agent_id.is_(from_agent) if from_agent is None
                                   else Conversation.agent_id == from_agent)
        .values(**values).execution_options(synchronize_session=False)))
    if not claimed:
        raise ChatError(409, "conflict", "the conversation changed meanwhile; try again")
    session.refresh(conv)
    if from_agent:
        free_slot(session, from_agent)
    else:
        enqueue("tasks.routing.route_waiting", session=session)
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
    done = rowcount(session.execute(
        update(Conversation).where(Conversation.id == conversation_id, Conversation.status == "active",
                                   Conversation.agent_id == agent_id)
        .values(agent_id=None, status="waiting", waiting_since=now, awaiting_reply_since=None)
        .execution_options(synchronize_session=False)))
    if not done:
        return False
    conv = _claimed(session, conversation_id)
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
