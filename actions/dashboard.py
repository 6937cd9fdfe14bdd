"""The operations dashboard's day: hourly figures for the last 24 hours, from the rows
themselves (conversations, agents' status changes, ratings, deliveries, orders)."""
from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from statistics import mean, median
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from actions.chat.agents import AGENT_STATUS_EVENT
from actions.chat.shapes import iso
from models import Agent, AnalyticsEvent, Conversation, NotificationDelivery, Order, utcnow

HOURS = 24


def day(session: Session, *, first_response_goal: float, csat_goal: float,
        now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    top = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    starts = [top - timedelta(hours=HOURS - i) for i in range(HOURS)]
    ends = [s + timedelta(hours=1) for s in starts]
    ends[-1] = now          # the hour under way counts up to now
    since = starts[0]
    convs = session.execute(select(
        Conversation.created_at, Conversation.assigned_at, Conversation.resolved_at,
        Conversation.first_response_at, Conversation.rating_score, Conversation.status).where(
        or_(Conversation.created_at >= since - timedelta(days=7), Conversation.status == "waiting"))).all()
    waiting, first, ratings = [], defaultdict(list), defaultdict(list)
    for end in ends:
        waiting.append(sum(1 for c in convs if c.created_at < end
                           and (c.assigned_at is None or c.assigned_at >= end)
                           and (c.resolved_at is None or c.resolved_at >= end)))
    for c in convs:
        if c.first_response_at is not None and c.created_at >= since:
            first[_hour(starts, c.created_at)].append((c.first_response_at - c.created_at).total_seconds())
        if c.rating_score is not None and c.resolved_at is not None and c.resolved_at >= since:
            ratings[_hour(starts, c.resolved_at)].append(c.rating_score)
    all_ratings = [r for rs in ratings.values() for r in rs]
    all_first = [f for fs in first.values() for f in fs]
    return {
        "hours": [iso(s) for s in starts],
        "waiting": waiting,
        "agents_online": _agents_online(session, ends),
        "first_response_seconds": [round(median(first[i]), 1) if first[i] else None for i in range(HOURS)],
        "csat": [round(mean(ratings[i]), 2) if ratings[i] else None for i in range(HOURS)],
        "goals": {"first_response_seconds": first_response_goal, "csat": csat_goal},
        "totals": {"first_response_median_seconds": round(median(all_first), 1) if all_first else None,
                   "csat": round(mean(all_ratings), 2) if all_ratings else None,
                   "ratings": len(all_ratings)},
        "orders_by_status": dict(session.execute(
            select(Order.status, func.count()).group_by(Order.status)).all()),
        "deliveries_by_channel": _deliveries(session, since),
    }


def _hour(starts: list[datetime], at: datetime) -> int:
    return max(0, min(HOURS - 1, bisect_right(starts, at) - 1))


def _agents_online(session: Session, ends: list[datetime]) -> list[int]:
    """Agents online at the end of each hour: today's statuses, with the day's changes
    undone from the newest back (each change records the status it left)."""
    state = dict(session.execute(select(Agent.user_id, Agent.status)).all())
    changes = session.execute(select(AnalyticsEvent.subject_id, AnalyticsEvent.data, AnalyticsEvent.created_at)
                              .where(AnalyticsEvent.name == AGENT_STATUS_EVENT,
                                     AnalyticsEvent.created_at >= ends[0] - timedelta(hours=1))
                              .order_by(AnalyticsEvent.created_at.desc(), AnalyticsEvent.id.desc())).all()
    out: list[int] = []
    i = 0
    for end in reversed(ends):
        while i < len(changes) and changes[i].created_at > end:
            agent_id, data = changes[i].subject_id, changes[i].data or {}
            state[agent_id] = data.get("from") or "offline"
            i += 1
        out.append(sum(1 for s in state.values() if s == "online"))
    return out[::-1]


def _deliveries(session: Session, since: datetime) -> dict[str, dict[str, int]]:
    rows = session.execute(select(NotificationDelivery.channel, NotificationDelivery.status, func.count())
                           .where(NotificationDelivery.updated_at >= since)
                           .group_by(NotificationDelivery.channel, NotificationDelivery.status)).all()
    out: dict[str, Counter] = defaultdict(Counter)
    for channel, status, n in rows:
        out[channel][status] += n
    return {channel: dict(counts) for channel, counts in sorted(out.items())}
