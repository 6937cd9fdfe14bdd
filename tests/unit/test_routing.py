"""Routing: the policy (pure) and its database side on SQLite (the race is in integration)."""
from __future__ import annotations

from datetime import timedelta

from actions import routing
from actions.chat.agents import connection_changed
from actions.routing import (AgentSlot, WaitingItem, plan_next, priority_score, rank_agents,
                             required_skills, route_waiting)
from models import Agent, Conversation, utcnow
from tests.support.chat import ADMIN, error, h, make_agent, open_conv, send


# ---- the policy --------------------------------------------------------------------

def test_priority_score_parts_and_caps():
    base = priority_score(vip=False, waited_seconds=0, lifetime_value=0, priority="low")
    assert base == 0
    assert priority_score(vip=True, waited_seconds=0, lifetime_value=0, priority="low") == 100
    assert priority_score(vip=False, waited_seconds=600, lifetime_value=0, priority="low") == 10
    assert priority_score(vip=False, waited_seconds=10 * 3600, lifetime_value=0, priority="low") == 50
    assert priority_score(vip=False, waited_seconds=0, lifetime_value=5000, priority="low") == 5
    assert priority_score(vip=False, waited_seconds=0, lifetime_value=10**7, priority="low") == 30
    assert (priority_score(vip=False, waited_seconds=0, lifetime_value=0, priority="urgent")
            > priority_score(vip=False, waited_seconds=0, lifetime_value=0, priority="high")
            > priority_score(vip=False, waited_seconds=0, lifetime_value=0, priority="medium") > 0)


def slot(aid, skills, load, limit, rt=None):
    return AgentSlot(aid, frozenset(skills), load, limit, rt)


def test_rank_agents_skills_then_load_then_response_time():
    need = required_skills("th", ["Billing"])
    assert need == {"th", "billing"}
    agents = [slot("en-idle", {"en"}, 0, 3), slot("th-busy", {"th", "billing"}, 2, 3),
              slot("th-idle-slow", {"th", "billing"}, 0, 3, 90),
              slot("th-idle-fast", {"th", "billing"}, 0, 3, 30),
              slot("th-full", {"th", "billing"}, 3, 3)]
    assert [a.id for a in rank_agents(need, agents)] == ["th-idle-fast", "th-idle-slow", "th-busy", "en-idle"]
    # nobody covers: any agent with a free slot, lowest load ratio, then best response time
    assert [a.id for a in rank_agents(frozenset({"jp"}), agents)] == [
        "th-idle-fast", "th-idle-slow", "en-idle", "th-busy"]


def test_plan_next_by_score():
    agents = [slot("en", {"en"}, 0, 1)]
    queue = [WaitingItem("th-new", 10, frozenset({"th"}), waited_seconds=5),
             WaitingItem("en-low", 1, frozenset({"en"})),
             WaitingItem("vip-th", 100, frozenset({"th"}), vip=True)]
    # Without learned statistics nobody waits while a slot is free (the derived hold and the
    # VIP reserve are in test_routing_adaptive.py).
    assert [i.id for i, _ in plan_next(queue, agents)] == ["vip-th", "th-new", "en-low"]


# ---- the database side -----------------------------------------------------------------

def load(services, aid):
    with services.session() as s:
        return s.get(Agent, aid).current_conversations


def conv_of(services, cid):
    with services.session() as s:
        return s.get(Conversation, cid)


def test_never_over_the_limit_and_the_rest_waits(client, services):
    make_agent(client, "a1", limit=2)
    ids = [open_conv(client, f"c{i}")["id"] for i in range(5)]
    assigned = route_waiting(services.session)
    assert len(assigned) == 2 and load(services, "a1") == 2
    assert route_waiting(services.session) == []  # a repeat finds nothing to do
    waiting = [c for c in ids if conv_of(services, c).status == "waiting"]
    assert len(waiting) == 3
    # resolving frees a slot: the next best waiting conversation goes
    client.post(f"/api/v1/conversations/{assigned[0]}/resolve", headers=h("a1", "agent"))
    assert load(services, "a1") == 1
    assert len(route_waiting(services.session)) == 1 and load(services, "a1") == 2


def test_vip_and_value_go_first(client, services):
    for cust, vip, value in (("plain", False, 0), ("rich", False, 20000), ("vip", True, 0)):
        client.put(f"/api/v1/customers/{cust}", headers=h("store", "service"),
                   json={"is_vip": vip, "lifetime_value": value})
    plain = open_conv(client, "plain", priority="urgent")["id"]
    rich = open_conv(client, "rich")["id"]
    vip = open_conv(client, "vip", priority="low")["id"]
    make_agent(client, "a1", limit=1)
    assert route_waiting(services.session) == [vip]
    make_agent(client, "a2", limit=1)
    assert route_waiting(services.session) == [plain]  # urgent (30) beats value 20000 (20) + medium (5)
    make_agent(client, "a3", limit=1)
    assert route_waiting(services.session) == [rich]


def test_skill_match_then_load(client, services):
    make_agent(client, "en1", limit=3, skills=["en"])
    make_agent(client, "th1", limit=3, skills=["th", "billing"])
    client.put("/api/v1/customers/somchai", headers=h("store", "service"), json={"language": "th"})
    th = open_conv(client, "somchai", tags=["billing"])["id"]
    assert route_waiting(services.session) == [th]
    assert conv_of(services, th).agent_id == "th1"
    en = [open_conv(client, f"e{i}", metadata={"language": "en"})["id"] for i in range(2)]
    route_waiting(services.session)
    assert {conv_of(services, c).agent_id for c in en} == {"en1"}
    # Nobody speaks Japanese: the agent with the lowest load ratio takes it.
    jp = open_conv(client, "jp", metadata={"language": "jp"})["id"]
    route_waiting(services.session)
    assert conv_of(services, jp).agent_id == "th1"


def test_offline_and_busy_agents_get_nothing(client, services):
    make_agent(client, "a1", limit=3)
    client.put("/api/v1/agents/me/status", headers=h("a1", "agent"), json={"status": "busy"})
    cid = open_conv(client)["id"]
    assert route_waiting(services.session) == []
    client.put("/api/v1/agents/me/status", headers=h("a1", "agent"), json={"status": "offline"})
    assert route_waiting(services.session) == []
    client.put("/api/v1/agents/me/status", headers=h("a1", "agent"), json={"status": "online"})
    assert route_waiting(services.session) == [cid]


def test_dropped_connection_takes_agent_offline_and_grace_requeues(client, services):
    make_agent(client, "a1", limit=3)
    cid = open_conv(client)["id"]
    route_waiting(services.session)
    with services.session() as s:
        connection_changed(s, "a1", online=False, grace_seconds=120)
    with services.session() as s:
        agent = s.get(Agent, "a1")
        assert agent.status == "offline" and agent.resume_status == "online"
    other = open_conv(client, "c2")["id"]
    assert route_waiting(services.session) == []  # nothing new while offline
    with services.session() as s:  # still within grace: keeps the conversation
        assert routing.release_offline_agent(s, "a1", 120) == []
    # back within grace: the status they chose is restored and routing resumes
    with services.session() as s:
        connection_changed(s, "a1", online=True)
    assert route_waiting(services.session) == [other]
    # gone for good: after the grace period the conversations go back to routing
    with services.session() as s:
        connection_changed(s, "a1", online=False)
    later = utcnow() + timedelta(seconds=121)
    with services.session() as s:
        assert routing.offline_agents_past_grace(s, 120, now=later) == ["a1"]
        assert sorted(routing.release_offline_agent(s, "a1", 120, now=later)) == sorted([cid, other])
    assert conv_of(services, cid).status == "waiting" and load(services, "a1") == 0
    msgs = client.get(f"/api/v1/conversations/{cid}/messages", headers=h("cust-1")).get_json()["messages"]
    assert msgs[-1]["content"]["text"] == "Returned to the queue"
    with services.session() as s:  # running it again changes nothing
        assert routing.release_offline_agent(s, "a1", 120, now=later) == []


def test_unanswered_timeout_requeues(client, services):
    make_agent(client, "a1")
    cid = open_conv(client, text="hello?")["id"]
    route_waiting(services.session)
    send(client, cid, "cust-1", "customer", "anyone?")
    with services.session() as s:
        assert routing.requeue_unanswered(s, 0) == []  # off by default
        assert routing.requeue_unanswered(s, 60) == []
    with services.session() as s:
        assert routing.requeue_unanswered(s, 60, now=utcnow() + timedelta(seconds=61)) == [cid]
    assert conv_of(services, cid).status == "waiting"
    # an answered conversation is left alone
    route_waiting(services.session)
    send(client, cid, "a1", "agent", "here!")
    with services.session() as s:
        assert routing.requeue_unanswered(s, 60, now=utcnow() + timedelta(seconds=600)) == []


def test_transfer_to_agent_and_back_to_queue(app, client, services):
    got = []
    services.bus.attach(got.append)
    make_agent(client, "a1", limit=1)
    make_agent(client, "a2", limit=1)
    cid = open_conv(client)["id"]
    route_waiting(services.session)
    first = conv_of(services, cid).agent_id
    second = "a2" if first == "a1" else "a1"
    error(client.post(f"/api/v1/conversations/{cid}/transfer", headers=h(second, "agent"),
                      json={"to_agent_id": second}), 403)
    r = client.post(f"/api/v1/conversations/{cid}/transfer", headers=h(first, "agent"),
                    json={"to_agent_id": second})
    assert r.status_code == 200 and r.get_json()["agent_id"] == second
    assert load(services, first) == 0 and load(services, second) == 1
    ev = [e for e in got if e.name == "agent:transfer" and e.topic == f"conversation:{cid}"]
    assert ev[-1].data == {"conversation_id": cid, "from_agent": first, "to_agent": second}
    # the target is full now: a transfer to them is refused
    cid2 = open_conv(client, "c2")["id"]
    route_waiting(services.session)
    error(client.post(f"/api/v1/conversations/{cid2}/transfer", headers=ADMIN,
                      json={"to_agent_id": second}), 409, "agent_unavailable")
    error(client.post(f"/api/v1/conversations/{cid2}/transfer", headers=ADMIN,
                      json={"to_agent_id": "ghost"}), 404)
    r = client.post(f"/api/v1/conversations/{cid}/transfer", headers=h(second, "agent"),
                    json={"to_agent_id": None})
    assert r.status_code == 200 and r.get_json()["status"] == "waiting"
    assert load(services, second) == 0
    texts = [m["content"]["text"] for m in client.get(
        f"/api/v1/conversations/{cid}/messages", headers=ADMIN).get_json()["messages"]]
    assert texts[-2:] == [f"Transferred to {second}", "Returned to the queue"]
    error(client.post(f"/api/v1/conversations/{cid}/transfer", headers=ADMIN,
                      json={"to_agent_id": None}), 409, "already_waiting")
    error(client.post(f"/api/v1/conversations/{cid}/transfer", headers=ADMIN,
                      json={"to_agent_id": "bad id!"}), 400)


def test_sweep_task_runs_everything(app, client, services):
    from tasks.routing import sweep
    make_agent(client, "a1")
    cid = open_conv(client)["id"]
    result = sweep.run()
    assert result["assigned"] == [cid] and result["released"] == [] and result["unanswered"] == []


def test_an_agent_going_offline_is_announced_only_once_it_is_recorded(client, services):
    """Whoever hears `user:offline` and then asks finds the agent offline."""
    from actions.presence import announce_many
    make_agent(client, "a1", limit=3)
    cid = open_conv(client)["id"]
    route_waiting(services.session)
    heard = []
    services.bus.attach(lambda ev: heard.append(ev.name))
    services.bus.listen(f"conversation:{cid}")

    def agent_status():
        with services.session() as s:
            return s.get(Agent, "a1").status
    with services.session() as s:
        announce_many(s, [("a1", False)], grace_seconds=120)
        assert "user:offline" not in heard  # not before the commit
    assert "user:offline" in heard and agent_status() == "offline"
