"""Routing that adapts: the derived hold, the VIP reserve, handling times learned from resolved
conversations (pure, then on SQLite through the worker's path and the API)."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from actions.routing import (AgentSlot, LearnedCache, Priors, RoutingStats, VipGoal, WaitingItem,
                             hold_decision, learn_from_db, plan_next, route_waiting, vip_reserve)
from models import Agent, Conversation, utcnow
from tests.support.chat import ADMIN, h, make_agent, open_conv

TH, EN = frozenset({"th"}), frozenset({"en"})


def slot(aid, skills, load, limit):
    return AgentSlot(aid, frozenset(skills), load, limit)


def learned(factor: float, n: int = 100) -> RoutingStats:
    """Statistics after `n` conversations per agent of busy_team(), each in six minutes with the
    agent's own language, and `n` of each language `factor` x as long without it (by agents
    not on the team, so that the team's own slots free every six minutes)."""
    stats = RoutingStats(Priors())
    for _ in range(n):
        for i in range(3):
            stats.add(f"th{i}", TH, TH, 360)
        stats.add("en0", EN, EN, 360)
        stats.add("en-x", TH, EN, 360 * factor)
        stats.add("th-x", EN, TH, 360 * factor)
    return stats


def busy_team() -> list[AgentSlot]:
    """Three Thai agents full, one English agent with one slot free: 11 of 12 slots taken."""
    return [slot(f"th{i}", {"th"}, 3, 3) for i in range(3)] + [slot("en0", {"en"}, 2, 3)]


def planned(queue, agents, stats, goal=VipGoal()) -> list[str]:
    """What the worker would assign, in order, taking each item's best agent."""
    out = []
    for item, ranked in plan_next(queue, agents, stats, goal):
        ranked[0].load += 1
        out.append(item.id)
    return out


def thai(n: int, score: float = 10.0) -> list[WaitingItem]:
    return [WaitingItem(f"t{i}", score - i * 0.1, TH, since=i) for i in range(n)]


# ---- learned handling times ---------------------------------------------------------------

def test_the_prior_decides_until_data_outweighs_it():
    stats = RoutingStats(Priors(handle_seconds=360, mismatch_factor=1.5, weight=10))
    assert stats.team_handle() == 360 and stats.mismatch({"th"}) == pytest.approx(1.5)
    assert stats.agent_handle("nobody") == 360 and stats.skill_handle("th") == 360
    for _ in range(5):  # a few fast conversations move the estimate a little
        stats.add("th0", TH, TH, 120)
    assert 250 < stats.team_handle() < 300
    for _ in range(500):
        stats.add("th0", TH, TH, 120)
        stats.add("en0", TH, EN, 360)  # without Thai: 3x as long
    assert stats.skill_handle("th") == pytest.approx(120, rel=0.05)
    assert stats.mismatch({"th"}) == pytest.approx(3.0, rel=0.05)
    assert stats.agent_handle("th0") == pytest.approx(120, rel=0.05)
    # what en0 was given (Thai, mismatched) is how soon its slots free
    assert stats.agent_slot_seconds("en0") == pytest.approx(360, rel=0.05)
    # a skill nobody has data for inherits the team's figures, not the prior
    assert stats.skill_handle("ja") == stats.team_handle()
    assert stats.mismatch({"ja"}) == pytest.approx(stats.team_mismatch())
    assert stats.mismatch(set()) == 1.0


def test_per_agent_and_per_skill_figures():
    stats = RoutingStats(Priors(weight=10))
    for seconds in (100, 200, 300):
        stats.add("a1", frozenset({"th", "billing"}), frozenset({"th", "billing"}), seconds)
    stats.add("a1", EN, TH, 600)
    figures = stats.agent_json("a1")
    assert figures["handle_time_avg"] == 300.0 and figures["handled_count"] == 4
    assert figures["handle_times"] == {"billing": {"count": 3, "avg": 200.0},
                                       "en": {"count": 1, "avg": 600.0},
                                       "th": {"count": 3, "avg": 200.0}}
    assert stats.agent_json("nobody")["handle_time_avg"] is None
    skills = stats.json()["skills"]
    assert skills["en"]["mismatched"] == {"count": 1, "avg": 600.0}
    assert skills["th"]["matched"] == {"count": 3, "avg": 200.0}


# ---- the derived hold -----------------------------------------------------------------------

def test_a_covering_slot_near_is_worth_waiting_for():
    stats = learned(1.5)
    assert stats.mismatch({"th"}) == pytest.approx(1.5)
    team = busy_team()
    decision = hold_decision(thai(1)[0], team[-1], team[:3], ahead=0, behind=0, busy=11,
                             slots=12, stats=stats)
    # Nine Thai slots free one every 40 s. A mismatch burns 0.5 x 360 s, counted as 0.42 x
    # (half a standard error off), of which 11/12 is someone's wait: about 137 s.
    assert decision.hold and decision.expected_wait == pytest.approx(40, rel=0.05)
    assert 120 < decision.mismatch_cost < 150
    assert planned(thai(1), busy_team(), stats) == []


def test_a_mismatch_that_costs_nothing_is_never_held():
    stats = learned(1.0)
    assert stats.mismatch({"th"}) == pytest.approx(1.0, abs=0.005)  # what is left of the prior
    team = busy_team()
    decision = hold_decision(thai(1)[0], team[-1], team[:3], 0, 20, 11, 12, stats)
    assert not decision.hold and decision.mismatch_cost == 0
    assert planned(thai(1), busy_team(), stats) == ["t0"]


def test_the_prior_alone_is_too_unsure_to_hold_long():
    # Ten conversations' worth of 1.5x is half a standard error from 1.17x: a hold only
    # where a covering slot frees almost at once.
    team = busy_team()
    prior = RoutingStats(Priors())
    assert not hold_decision(thai(1)[0], team[-1], team[:3], 1, 0, 11, 12, prior).hold
    assert hold_decision(thai(1)[0], team[-1], team[:3], 0, 0, 11, 12, prior).hold


def test_the_hold_ends_where_the_covering_queue_is_too_long():
    # Each Thai conversation held ahead adds 40 s to the next one's wait; the cost of a
    # mismatch falls with fewer behind. The fourth is better off with the English agent.
    assert planned(thai(5), busy_team(), learned(1.5)) == ["t3"]


def test_a_quiet_team_does_not_hold():
    agents = [slot("th0", {"th"}, 1, 1), slot("en0", {"en"}, 0, 3)]
    decision = hold_decision(thai(1)[0], agents[1], agents[:1], 0, 0, 1, 4, learned(1.5))
    assert not decision.hold  # one slot in four busy: the burned time is hardly anyone's wait
    assert planned(thai(1), agents, learned(1.5)) == ["t0"]


def test_nobody_online_covers_it_so_nobody_waits():
    queue = [WaitingItem("ja", 10, frozenset({"ja"}))]
    assert planned(queue, busy_team(), learned(1.5)) == ["ja"]


def test_vip_first_and_never_held():
    queue = thai(3) + [WaitingItem("vip", 110, TH, vip=True, since=9)]
    assert planned(queue, busy_team(), learned(1.5)) == ["vip"]
    # by score among the rest: the English conversation behind the held Thai ones goes
    queue = thai(2) + [WaitingItem("en", 5, EN, since=5)]
    assert planned(queue, busy_team(), learned(1.5)) == ["en"]


# ---- the VIP reserve ------------------------------------------------------------------------

def reserve_stats(over: int, of: int = 100, vip_per_hour: float = 90) -> RoutingStats:
    stats = RoutingStats(Priors())
    stats.vip_rate = vip_per_hour / 3600
    stats.vip_waits = [90.0] * over + [5.0] * (of - over)
    return stats


def test_no_reserve_while_vips_meet_their_goal():
    team = [slot(f"a{i}", {"en"}, 0, 3) for i in range(8)]
    assert vip_reserve(team, reserve_stats(over=2), VipGoal()) == 0


def test_a_reserve_when_vips_miss_their_goal_and_none_if_it_costs_too_much():
    team = [slot(f"a{i}", {"en"}, 0, 3) for i in range(8)]  # 24 slots of 6 minutes
    assert vip_reserve(team, reserve_stats(over=10), VipGoal()) == 1
    small = [slot(f"a{i}", {"en"}, 0, 1) for i in range(6)]  # one slot kept = 1/6 of the team
    assert vip_reserve(small, reserve_stats(over=10, vip_per_hour=10), VipGoal()) == 0


def test_the_reserved_slot_waits_for_a_vip():
    def team():  # one slot free in 24
        return [slot(f"a{i}", {"en"}, 3, 3) for i in range(7)] + [slot("a7", {"en"}, 2, 3)]
    stats = reserve_stats(over=10)
    plain = [WaitingItem("plain", 30, EN)]
    assert planned(plain, team(), stats) == []
    assert planned(plain + [WaitingItem("vip", 105, EN, vip=True)], team(), stats) == ["vip"]
    assert planned(plain, team(), reserve_stats(over=0)) == ["plain"]


# ---- on the database, through the worker's path ------------------------------------------------

def resolved(services, agent_id: str, language: str, seconds: float, n: int = 1,
             first_response: float | None = None) -> None:
    now = utcnow()
    with services.session() as s:
        for i in range(n):
            start = now - timedelta(hours=2, seconds=i)
            s.add(Conversation(customer_id=f"old-{agent_id}-{language}-{i}-{seconds}",
                               agent_id=agent_id, status="resolved", meta={"language": language},
                               created_at=start - timedelta(seconds=30), assigned_at=start,
                               resolved_at=start + timedelta(seconds=seconds),
                               first_response_at=(start + timedelta(seconds=first_response)
                                                  if first_response is not None else None)))


def test_handling_times_learned_from_resolved_conversations(client, services):
    make_agent(client, "th1", limit=3, skills=["th"])
    make_agent(client, "en1", limit=3, skills=["en"])
    resolved(services, "th1", "th", 200, n=3, first_response=60)
    resolved(services, "en1", "th", 500, n=2, first_response=200)
    resolved(services, "en1", "en", 300, n=1)
    open_conv(client, "still-waiting", metadata={"language": "th"})  # not resolved: not counted
    with services.session() as s:
        stats = learn_from_db(s, Priors(weight=10))
    assert stats.skill_matched["th"].count == 3 and stats.skill_matched["th"].mean() == 200
    assert stats.skill_mismatched["th"].count == 2 and stats.skill_mismatched["th"].mean() == 500
    assert stats.agent_all["en1"].count == 3

    agents = {a["id"]: a for a in client.get("/api/v1/agents", headers=ADMIN).get_json()["agents"]}
    assert agents["th1"]["handle_time_avg"] == 200.0 and agents["th1"]["handled_count"] == 3
    assert agents["en1"]["handle_times"] == {"en": {"count": 1, "avg": 300.0},
                                             "th": {"count": 2, "avg": 500.0}}
    assert agents["en1"]["current_conversations"] == 0  # the live fields are still there

    figures = client.get("/api/v1/stats", headers=ADMIN).get_json()
    th = figures["routing"]["skills"]["th"]
    assert th["matched"] == {"count": 3, "avg": 200.0} and th["mismatch_factor"] > 1.5
    assert figures["routing"]["vip_reserve"] == 0
    # within 2 minutes: 3 answered 90 s after they opened, 2 answered after 230 s, 1 never
    # answered (missed); the one still waiting is younger than 2 minutes: not counted yet
    assert figures["chat"]["first_response_within_2min_share"] == pytest.approx(0.5)


def test_the_derived_hold_in_the_worker(client, services):
    make_agent(client, "th1", limit=6, skills=["th"])
    make_agent(client, "en1", limit=6, skills=["en"])
    resolved(services, "th1", "th", 360, n=100)
    resolved(services, "en1", "th", 540, n=100)  # measured: without Thai, 1.5x as long
    for i in range(6):
        open_conv(client, f"t{i}", metadata={"language": "th"})
    for i in range(4):
        open_conv(client, f"e{i}", metadata={"language": "en"})
    assert len(route_waiting(services.session)) == 10  # everyone covered: th1 full, en1 4 of 6
    # A Thai speaker's slot frees about every minute; a mismatch would burn 3 minutes of en1's,
    # 10/12 of it someone's wait: waiting pays.
    held = open_conv(client, "t-held", metadata={"language": "th"})["id"]
    assert route_waiting(services.session) == []
    client.put("/api/v1/customers/vip", headers=h("store", "service"), json={"is_vip": True})
    vip = open_conv(client, "vip", metadata={"language": "th"})["id"]
    assert route_waiting(services.session) == [vip]  # a VIP takes the English agent at once
    # Measured since: without Thai it takes no longer. Nothing to wait for any more.
    resolved(services, "en1", "th", 360, n=400)
    assert route_waiting(services.session) == [held]
    with services.session() as s:
        assert s.get(Conversation, held).agent_id == "en1"
        assert s.get(Agent, "en1").current_conversations == 6  # and never over the limit
    assert route_waiting(services.session, priors=None) == []  # nothing left either way


def test_the_worker_reads_handling_times_again_every_30_seconds(services):
    clock = [0.0]
    cache = LearnedCache(30, clock=lambda: clock[0])
    with services.session() as s:
        first = cache.get(s, Priors())
    resolved(services, "a1", "en", 100, n=5)
    clock[0] = 29
    with services.session() as s:
        assert cache.get(s, Priors()) is first  # within 30 s: what was learned
    clock[0] = 30
    with services.session() as s:
        again = cache.get(s, Priors())
    assert again.agent_all["a1"].count == 5 and first.agent_all.get("a1") is None


def test_an_agent_whose_slots_stop_freeing_looks_slower():
    stats = RoutingStats(Priors(weight=10))
    for _ in range(10):
        stats.add("a1", EN, EN, 100)
    before = stats.agent_slot_seconds("a1")
    stats.open_ages = {"a1": 3 * 3000.0}  # three conversations open for 50 minutes
    assert stats.agent_slot_seconds("a1") > 3 * before
    # ... so that a held conversation stops waiting for them
    team = [slot("a1", {"th"}, 3, 3), slot("en0", {"en"}, 2, 3)]
    assert hold_decision(thai(1)[0], team[1], team[:1], 0, 3, 5, 6, learned(2.0)).hold
    stuck = replace(learned(2.0), open_ages={"a1": 3 * 3600.0 * 8})
    assert not hold_decision(thai(1)[0], team[1], team[:1], 0, 3, 5, 6, stuck).hold


def test_open_conversations_are_read_from_the_database(client, services):
    make_agent(client, "a1", limit=3)
    open_conv(client, "c1")
    open_conv(client, "c2")
    assert len(route_waiting(services.session)) == 2
    with services.session() as s:
        stats = learn_from_db(s, Priors(), now=utcnow() + timedelta(hours=1))
    assert stats.open_ages["a1"] == pytest.approx(2 * 3600, abs=60)
