"""The dashboard's day: each hour's figure read back from the rows that made it."""
from __future__ import annotations

from datetime import UTC, datetime

from actions import dashboard
from actions.chat.agents import record_status
from models import Agent, AnalyticsEvent, Conversation, User

NOW = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)


def at(hour: int, minute: int) -> datetime:
    return NOW.replace(hour=hour, minute=minute)


def test_the_day_hour_by_hour(services):
    with services.session() as s:
        s.add_all([User(id="ag-a", role="agent"), User(id="cu-1"), User(id="cu-2")])
        s.add(Agent(user_id="ag-a", name="A", skills=[], status="offline", current_conversations=0,
                    concurrent_limit=2))
        s.flush()
        for status_from, status_to, when in (("offline", "online", at(9, 30)), ("online", "offline", at(11, 30))):
            record_status(s, "ag-a", status_from, status_to)
            s.flush()
            s.query(AnalyticsEvent).filter(AnalyticsEvent.created_at > NOW).update(
                {"created_at": when}, synchronize_session=False)
        s.add(Conversation(id="c1", customer_id="cu-1", status="resolved", created_at=at(10, 10),
                           assigned_at=at(11, 20), first_response_at=at(10, 13), resolved_at=at(12, 10),
                           rating_score=4))
        s.add(Conversation(id="c2", customer_id="cu-2", status="waiting", created_at=at(12, 5)))
    with services.session() as s:
        d = dashboard.day(s, first_response_goal=120, csat_goal=4.5, now=NOW)
    hours = [h[11:13] for h in d["hours"]]
    assert len(hours) == 24 and hours[-1] == "12"
    by_hour = dict(zip(hours, zip(d["waiting"], d["agents_online"], d["first_response_seconds"], d["csat"],
                                  strict=True), strict=True))
    assert by_hour["09"] == (0, 1, None, None)     # online from 09:30: on at 10:00
    assert by_hour["10"] == (1, 1, 180.0, None)    # c1 waits at 11:00; its first answer took 3 min
    assert by_hour["11"] == (0, 0, None, None)     # assigned 11:20; the agent left at 11:30
    assert by_hour["12"] == (1, 0, None, 4.0)      # c2 waits now; c1 rated 4 at 12:10
    assert by_hour["08"] == (0, 0, None, None)
    assert d["totals"] == {"first_response_median_seconds": 180.0, "csat": 4.0, "ratings": 1}
    assert d["goals"] == {"first_response_seconds": 120, "csat": 4.5}
