"""Routing's policy, pure: who answers which waiting conversation (PROTOCOL.md section 4).

No database, no clock: the worker (actions/routing.py) and the routing
simulation (bench/chat_routing_sim.py) hand it the same things (the waiting
queue, the online agents with their loads, the learned handling times) and
get the same answer.

Order: the priority score, highest first (a VIP first). Agents: those whose
skills cover the conversation first, then lowest load ratio, then best
response time. Two kinds of waiting with a slot free, both derived from the
live state rather than set, and never for a VIP:

- the hold (`hold_decision`): a conversation that no free agent covers
  waits for one who does when a covering slot is expected sooner than what
  a mismatch would cost;
- the VIP reserve (`vip_reserve`): when VIPs have lately waited past their
  goal, the last free slot or two are kept for the next VIP, if that costs
  the others little enough.

bench/chat_routing_family.py replays them on a family of days and on random
ones (BENCHMARKS.md, "Adaptive routing").
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from actions.routing_stats import RoutingStats, conversation_skills

PRIORITY_POINTS = {"low": 0.0, "medium": 5.0, "high": 15.0, "urgent": 30.0}


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
    return conversation_skills(language, tags)


def rank_agents(required: frozenset[str], agents: Iterable[AgentSlot]) -> list[AgentSlot]:
    """Agents with a free slot: covering skills first, then lowest load ratio, then best response time."""
    free = [a for a in agents if a.free]
    return sorted(free, key=lambda a: (not required <= a.skills, -len(required & a.skills), a.ratio,
                                       a.response_time if a.response_time is not None else 1e9,
                                       a.id))


# A hold needs the learned factor to exceed 1.0 by half its standard error (handling times
# spread as much as their mean, so a factor from 20 mismatches is good to +/-30 %). Measured on
# the family of days and 60 random ones (bench/chat_routing_family.py): trusting the estimate
# as it is let noise hold conversations on days where matching gains nothing (1.05-1.3x the
# p95 of never holding); a whole standard error made it slow to hold where it pays (DESIGN.md's
# day 0.39x round robin instead of 0.31x).
HOLD_CONFIDENCE = 0.5


@dataclass(frozen=True)
class VipGoal:
    wait_seconds: float = 60.0      # DESIGN.md: VIP p95 within a minute...
    tail: float = 0.05              # ...so at most 5 % of VIPs wait longer
    reserve_share: float = 0.05     # the most of the team's slots a VIP reserve may leave idle


@dataclass(frozen=True)
class HoldDecision:
    hold: bool
    expected_wait: float      # seconds until a covering slot is this conversation's
    mismatch_cost: float      # seconds of waiting a mismatch would cause, this one's and others'


def hold_decision(item: WaitingItem, other: AgentSlot, covering: list[AgentSlot], ahead: int,
                  behind: int, busy: int, slots: int, stats: RoutingStats) -> HoldDecision:
    """Should `item` wait for one of `covering` (all full now) rather than go to `other` now?

    Waiting: every busy covering slot frees at 1 / (its agent's learned time
    per conversation), so the conversation's turn, after the `ahead` held
    conversations those agents also cover, comes in (ahead + 1) / rate.

    A mismatch: `other` keeps the slot (factor - 1) x the matched handling
    time longer (both learned per skill; the factor counted half a standard
    error low, HOLD_CONFIDENCE). That lost capacity is someone's wait only
    if the team would have used it: with `busy` of `slots` taken, the next
    arrival meets it with probability busy / slots, and the `behind`
    conversations already waiting share the loss over the pool. With a
    factor of 1.0 (nothing to gain) nothing is ever held; a quiet team never
    holds; a busy one with a queue holds while a covering slot is near.
    """
    rate = sum(a.load / stats.agent_slot_seconds(a.id) for a in covering)
    if rate <= 0:
        return HoldDecision(False, math.inf, 0.0)
    expected = (ahead + 1) / rate
    excess = stats.mismatch_excess(item.required - other.skills, HOLD_CONFIDENCE)
    extra = excess * stats.handle(item.required)
    cost = extra * (busy + behind) / max(slots, 1)
    return HoldDecision(expected < cost, expected, cost)


def vip_reserve(agents: list[AgentSlot], stats: RoutingStats, goal: VipGoal) -> int:
    """Free slots that only a VIP may take now (0 on most days).

    Only when the goal is at risk: more than half the allowed share of the
    VIPs of the last hours (`stats.vip_waits`) waited past it. Then, with
    every slot taken, a VIP waits for the next to free: slots free at
    mu = sum(limit / time per conversation), VIPs come at lambda
    (`stats.vip_rate`). With r slots kept for them a VIP waits with
    probability rho^r (rho = lambda / mu: an M/M/1 queue of missing slots),
    then past t with probability exp(-(mu - lambda) t); r is the smallest
    that keeps that within the goal's tail. Kept slots stand idle until a
    VIP comes (on average sum of 1 - rho^j of them): more than
    `goal.reserve_share` of the team's slots and the reserve is not worth
    its cost to everyone else (a small team with long conversations), so
    there is none; nor when VIPs alone are more than the team can take.
    """
    waits = stats.vip_waits
    if sum(1 for w in waits if w > goal.wait_seconds) <= goal.tail / 2 * len(waits):
        return 0
    slots = sum(a.limit for a in agents)
    mu = sum(a.limit / stats.agent_slot_seconds(a.id) for a in agents)
    lam = stats.vip_rate
    if lam <= 0 or mu <= lam:
        return 0
    rho = lam / mu
    miss = math.exp(-(mu - lam) * goal.wait_seconds)
    reserve = 0
    while miss > goal.tail and reserve < slots:
        miss *= rho
        reserve += 1
    idle = sum(1 - rho ** j for j in range(1, reserve + 1))
    return reserve if idle <= goal.reserve_share * slots else 0


def plan_next(queue: list[WaitingItem], agents: list[AgentSlot], stats: RoutingStats | None = None,
              goal: VipGoal = VipGoal()) -> Iterator[tuple[WaitingItem, list[AgentSlot]]]:
    """Waiting conversations by score, each with its ranked free agents.

    `agents`: every online agent, full or not (the full ones are where a
    held conversation's slot comes from). `stats`: the learned handling
    times and rates; None: nobody waits while a slot is free. The caller
    may change `load` of the agents it assigns between two items: what
    follows sees it.
    """
    if not any(a.free for a in agents):
        return
    order = sorted(queue, key=lambda i: (-i.score, i.since, i.id))
    reserve = vip_reserve(agents, stats, goal) if stats is not None else 0
    slots = sum(a.limit for a in agents)
    held: Counter[frozenset[str]] = Counter()
    for position, item in enumerate(order):
        ranked = rank_agents(item.required, agents)
        if not ranked:
            return  # every slot taken
        if stats is None or item.vip:
            yield item, ranked
            continue
        if reserve and sum(a.limit - a.load for a in ranked) <= reserve:
            held[item.required] += 1
            continue
        best = ranked[0]
        if not item.required <= best.skills:
            covering = [a for a in agents if item.required <= a.skills]
            ahead = sum(n for need, n in held.items() if any(need <= a.skills for a in covering))
            busy = sum(a.load for a in agents)
            if covering and hold_decision(item, best, covering, ahead, len(order) - position - 1,
                                          busy, slots, stats).hold:
                held[item.required] += 1
                continue
        yield item, ranked
