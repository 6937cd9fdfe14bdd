"""Handling times learned from resolved conversations, for routing's derived hold.

A resolved conversation held one slot of its agent from `assigned_at` to
`resolved_at`: that is its handling time. From those, per agent and per
skill (a language or a tag), `RoutingStats` estimates

- how long a covering agent takes (a matched conversation: the agent's
  skills cover all it requires), per skill and per agent;
- what a mismatch costs: handling time when the agent lacked a skill the
  conversation required, as a factor over the matched time, per missing skill.

Every estimate is shrunk towards the level above it (agent or skill towards
the team, the team towards the prior of settings), `prior_weight`
conversations' worth: with no data the prior decides, with a few the
estimate moves a little, with many the data decides. Exponential-looking
handling times (their spread is as large as their mean) make a mean of ten
worth about +/-30 %, hence the default weight.

Beside them, what changes by the minute (`observe_now`): arrival and VIP
rates, the VIP waits of the last hours, how long each agent's open
conversations have lasted.

The worker builds the statistics from the database (`learn_from_db`); the
routing simulation (bench/chat_routing_sim.py) feeds `add` with its own
simulated conversations as they resolve. Same class, same arithmetic.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Agent, Conversation, Customer, utcnow

# The resolved conversations routing learns from: a few days of a small team, a day of a big
# one, so that a change (a new agent, a new product line) shows within a day.
RECENT_RESOLVED = 2000
# Long enough to count some 20 VIPs on a small team, short enough to see a peak coming.
RATE_WINDOW_SECONDS = 1800.0
# How far back the VIP reserve looks to see whether VIPs meet their goal: a good part of a
# day, so that a morning of short waits is not undone by one bad quarter of an hour.
VIP_WAIT_WINDOW_SECONDS = 4 * 3600.0


@dataclass(frozen=True)
class Priors:
    handle_seconds: float = 360.0      # DESIGN.md's routing day: 6 minutes
    mismatch_factor: float = 1.5       # DESIGN.md's routing day: 1.5x without the language
    weight: float = 10.0               # how many resolved conversations a prior is worth


@dataclass
class Tally:
    count: int = 0
    total: float = 0.0

    def add(self, seconds: float, sign: int = 1) -> None:
        self.count += sign
        self.total += sign * seconds

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def shrunk(self, prior: float, weight: float) -> float:
        return (self.total + prior * weight) / (self.count + weight)


@dataclass
class RoutingStats:
    priors: Priors = field(default_factory=Priors)
    matched: Tally = field(default_factory=Tally)
    mismatched: Tally = field(default_factory=Tally)
    skill_matched: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    skill_mismatched: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    agent_all: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    agent_matched: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    agent_skill: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    vip_rate: float = 0.0              # VIP conversations per second, lately (`recent_rate`)
    arrival_rate: float = 0.0          # all conversations per second, lately
    vip_waits: list[float] = field(default_factory=list)  # waits (so far) of the VIPs lately
    # Per agent, how long their open conversations have lasted so far (seconds, summed).
    open_ages: dict[str, float] = field(default_factory=dict)

    def add(self, agent_id: str, required: frozenset[str], agent_skills: frozenset[str],
            seconds: float, sign: int = 1) -> None:
        """One resolved conversation: `seconds` with an agent of `agent_skills` (sign -1: forget it)."""
        seconds = max(0.0, float(seconds))
        missing = required - agent_skills
        self.agent_all[agent_id].add(seconds, sign)
        for skill in required:
            self.agent_skill[(agent_id, skill)].add(seconds, sign)
        if missing:
            self.mismatched.add(seconds, sign)
            for skill in missing:
                self.skill_mismatched[skill].add(seconds, sign)
            return
        self.matched.add(seconds, sign)
        self.agent_matched[agent_id].add(seconds, sign)
        for skill in required:
            self.skill_matched[skill].add(seconds, sign)

    # ---- estimates (seconds) ---------------------------------------------------

    def team_handle(self) -> float:
        """Matched handling time over the whole team."""
        return self.matched.shrunk(self.priors.handle_seconds, self.priors.weight)

    def skill_handle(self, skill: str) -> float:
        tally = self.skill_matched.get(skill)
        team = self.team_handle()
        return tally.shrunk(team, self.priors.weight) if tally else team

    def handle(self, required: frozenset[str]) -> float:
        """Matched handling time of a conversation needing `required` (its slowest skill)."""
        return max((self.skill_handle(s) for s in required), default=self.team_handle())

    def agent_handle(self, agent_id: str) -> float:
        """How long this agent takes over a conversation they cover."""
        tally = self.agent_matched.get(agent_id)
        team = self.team_handle()
        return tally.shrunk(team, self.priors.weight) if tally else team

    def slot_seconds(self) -> float:
        """How long a conversation keeps a slot, matched or not, over the whole team."""
        team = Tally(self.matched.count + self.mismatched.count,
                     self.matched.total + self.mismatched.total)
        return team.shrunk(self.priors.handle_seconds, self.priors.weight)

    def agent_slot_seconds(self, agent_id: str) -> float:
        """How long this agent keeps a slot, whatever they were given: how soon their slots free.

        The open conversations count too, as lasting at least as long as they
        have so far (censored durations: their time adds to the total, not to
        the count): an agent whose slots stop freeing looks slower and slower,
        instead of being waited for at the pace of their past.
        """
        tally = self.agent_all.get(agent_id) or Tally()
        with_open = Tally(tally.count, tally.total + self.open_ages.get(agent_id, 0.0))
        return with_open.shrunk(self.slot_seconds(), self.priors.weight)

    def team_mismatch(self) -> float:
        team = self.team_handle()
        return self.mismatched.shrunk(self.priors.mismatch_factor * team, self.priors.weight) / team

    def skill_mismatch(self, skill: str) -> float:
        """Handling time without `skill` over the matched time of a conversation needing it."""
        matched = self.skill_handle(skill)
        tally = self.skill_mismatched.get(skill)
        team = self.team_mismatch()
        if not tally:
            return team
        return tally.shrunk(team * matched, self.priors.weight) / matched

    def mismatch(self, missing: Iterable[str]) -> float:
        """The factor of the costliest missing skill (1.0 when nothing is missing)."""
        return max((self.skill_mismatch(s) for s in missing), default=1.0)

    def mismatch_excess(self, missing: Iterable[str], z: float) -> float:
        """What a mismatch costs over 1.0x, less `z` standard errors of the estimate (at least 0)."""
        return max((self._excess(s, z) for s in missing), default=0.0)

    def _excess(self, skill: str, z: float) -> float:
        factor = self.skill_mismatch(skill)
        w = self.priors.weight
        x = self.skill_mismatched.get(skill)
        m = self.skill_matched.get(skill)
        n_x = x.count if x and x.count else self.mismatched.count
        n_m = m.count if m and m.count else self.matched.count
        # A mean of n handling times is good to 1/sqrt(n) (they spread as much as their mean); a
        # ratio of two means adds both errors; the prior counts as `weight` conversations.
        error = factor * math.sqrt(1.0 / (n_x + w) + 1.0 / (n_m + w))
        return max(0.0, factor - 1.0 - z * error)

    # ---- figures -----------------------------------------------------------------

    def agent_json(self, agent_id: str) -> dict[str, Any]:
        """What GET /api/v1/agents shows: measured averages and the estimate routing uses."""
        all_ = self.agent_all.get(agent_id, Tally())
        per_skill = {skill: _tally_json(t) for (aid, skill), t in sorted(self.agent_skill.items())
                     if aid == agent_id and t.count}
        return {"handle_time_avg": _round(all_.mean()), "handled_count": all_.count,
                "handle_time_estimate": _round(self.agent_handle(agent_id)),
                "slot_time_estimate": _round(self.agent_slot_seconds(agent_id)),
                "handle_times": per_skill}

    def json(self) -> dict[str, Any]:
        """What GET /api/v1/stats shows under `routing`."""
        skills = sorted(set(self.skill_matched) | set(self.skill_mismatched))
        return {
            "priors": {"handle_seconds": self.priors.handle_seconds,
                       "mismatch_factor": self.priors.mismatch_factor,
                       "weight": self.priors.weight},
            "handle_time": {"matched": _tally_json(self.matched),
                            "mismatched": _tally_json(self.mismatched),
                            "estimate": _round(self.team_handle()),
                            "mismatch_factor": _round(self.team_mismatch(), 3)},
            "skills": {s: {"matched": _tally_json(self.skill_matched.get(s, Tally())),
                           "mismatched": _tally_json(self.skill_mismatched.get(s, Tally())),
                           "handle_time_estimate": _round(self.skill_handle(s)),
                           "mismatch_factor": _round(self.skill_mismatch(s), 3)} for s in skills},
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return round(value, digits) if value is not None else None


def _tally_json(tally: Tally) -> dict[str, Any]:
    return {"count": tally.count, "avg": _round(tally.mean())}


def conversation_skills(language: Any, tags: Iterable[Any] | None) -> frozenset[str]:
    """What a conversation requires: its language and its tags, lower case."""
    need = {t.lower() for t in (tags or []) if isinstance(t, str)}
    if isinstance(language, str) and language:
        need.add(language.lower())
    return frozenset(need)


def recent_rate(times: Iterable[float], now: float, window: float = RATE_WINDOW_SECONDS) -> float:
    """Arrivals per second over the last `window` seconds."""
    return sum(1 for t in times if now - window <= t <= now) / window


def learn_handling(session: Session, priors: Priors, recent: int = RECENT_RESOLVED) -> RoutingStats:
    """Handling times from the `recent` most recently resolved conversations.

    An agent's skills are read as they are now: a profile edited since makes
    its older conversations count as matched or not by the new skills, which
    is what routing will face from now on.
    """
    skills = {aid: frozenset(s.lower() for s in (sk or []))
              for aid, sk in session.execute(select(Agent.user_id, Agent.skills)).all()}
    rows = session.execute(
        select(Conversation.agent_id, Conversation.assigned_at, Conversation.resolved_at,
               Conversation.meta["language"].as_string(), Conversation.tags, Customer.language)
        .outerjoin(Customer, Customer.user_id == Conversation.customer_id)
        .where(Conversation.resolved_at.is_not(None), Conversation.assigned_at.is_not(None),
               Conversation.agent_id.is_not(None))
        .order_by(Conversation.resolved_at.desc()).limit(recent)).all()
    stats = RoutingStats(priors)
    for agent_id, assigned_at, resolved_at, language, tags, customer_language in reversed(rows):
        if resolved_at < assigned_at:
            continue  # a re-assignment after the resolve: not a handling time
        stats.add(agent_id, conversation_skills(language or customer_language, tags),
                  skills.get(agent_id, frozenset()), (resolved_at - assigned_at).total_seconds())
    return stats


def observe_now(session: Session, stats: RoutingStats,
                now: datetime | None = None) -> RoutingStats:
    """`stats` with what changes by the minute: the arrival and VIP rates of the last 30
    minutes, the VIP waits of the last hours, how long each agent's open conversations have
    lasted so far."""
    now = now or utcnow()
    at = now.timestamp()
    recent = session.scalars(select(Conversation.created_at).where(
        Conversation.created_at >= now - timedelta(seconds=RATE_WINDOW_SECONDS))).all()
    vips = session.execute(
        select(Conversation.created_at, Conversation.assigned_at)
        .join(Customer, Customer.user_id == Conversation.customer_id)
        .where(Customer.is_vip.is_(True),
               Conversation.created_at >= now - timedelta(seconds=VIP_WAIT_WINDOW_SECONDS))).all()
    open_ages: dict[str, float] = defaultdict(float)
    for agent_id, assigned_at in session.execute(
            select(Conversation.agent_id, Conversation.assigned_at)
            .where(Conversation.status == "active", Conversation.agent_id.is_not(None),
                   Conversation.assigned_at.is_not(None))).all():
        if agent_id is not None and assigned_at is not None:   # the query's own condition
            open_ages[agent_id] += max(0.0, (now - assigned_at).total_seconds())
    # A VIP not assigned yet has waited so far; one re-queued since counts from its first arrival.
    return replace(stats, arrival_rate=recent_rate((c.timestamp() for c in recent), at),
                   vip_rate=recent_rate((c.timestamp() for c, _ in vips), at),
                   vip_waits=[((a or now) - c).total_seconds() for c, a in vips],
                   open_ages=dict(open_ages))


def learn_from_db(session: Session, priors: Priors, recent: int = RECENT_RESOLVED,
                  now: datetime | None = None) -> RoutingStats:
    """Everything routing learns from the database: handling times, rates, VIP waits."""
    return observe_now(session, learn_handling(session, priors, recent), now)


class LearnedCache:
    """Handling times learned at most every `seconds` (they move over hours, a pass is milliseconds).

    Reading 2,000 resolved conversations costs some 25-45 ms on PostgreSQL; a
    worker routes on every freed slot. One per worker process; the rates and
    VIP waits and open conversations are still read on every pass (`observe_now`).
    """

    def __init__(self, seconds: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._kept: tuple[float, Priors, RoutingStats] | None = None

    def get(self, session: Session, priors: Priors) -> RoutingStats:
        now = self.clock()
        kept = self._kept
        if kept is None or kept[1] != priors or now - kept[0] >= self.seconds:
            kept = self._kept = (now, priors, learn_handling(session, priors))
        return kept[2]
