"""Live chat over HTTP and WebSocket commands on SQLite and the in-memory bus (PROTOCOL.md 4).

The tests marked BOTH_ENGINES (what a send does) run on PostgreSQL as well, where a
customer's message takes another path, so both paths keep one behaviour. The fixtures
(`services`, `events`, `assigned`) are in tests/conftest.py.
"""
from __future__ import annotations

import pytest

from actions.routing import route_waiting
from api.auth import Principal
from realtime.commands import CommandError, run_command
from refusals import Refusal
from tests.support.chat import ADMIN, error, h, make_agent, open_conv, send

# The message tests run on both engines: on PostgreSQL a customer's message is one statement on
# an autocommit connection (`actions.chat.messages.send_at_once`), on SQLite the two-statement path.
BOTH_ENGINES = pytest.mark.engines("sqlite", "postgresql")


# ---- conversations ----------------------------------------------------------------

def test_create_conversation_waits_then_is_assigned(client, services, events):
    conv = open_conv(client, tags=["billing"], priority="high", text="hello",
                     metadata={"source": "mobile", "language": "en", "initial_url": "https://s/x"})
    assert conv["status"] == "waiting" and conv["agent_id"] is None
    assert conv["priority"] == "high" and conv["tags"] == ["billing"]
    assert conv["metadata"]["source"] == "mobile"
    assert [e.data["id"] for e in events.named("conversation:waiting", "agents")] == [conv["id"]]
    make_agent(client, "agent-a", skills=["en", "billing"])
    assert route_waiting(services.session) == [conv["id"]]
    got = client.get(f"/api/v1/conversations/{conv['id']}", headers=h("cust-1")).get_json()
    assert got["status"] == "active" and got["agent_id"] == "agent-a"
    assigned = events.named("agent:assigned", f"conversation:{conv['id']}")
    assert [e.data for e in assigned] == [{"conversation_id": conv["id"], "agent_id": "agent-a"}]
    assert events.named("agent:assigned", "user:agent-a")
    msgs = client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=h("cust-1")).get_json()
    assert [(m["sender_type"], m["content"]["text"]) for m in msgs["messages"]] == [
        ("customer", "hello"), ("system", "Agent-A joined the conversation")]


@pytest.mark.parametrize("body,code", [
    ({"priority": "extreme"}, "validation_error"),
    ({"tags": "billing"}, "validation_error"),
    ({"metadata": {"source": "fax"}}, "validation_error"),
    ({"text": "x" * 10_001}, "validation_error"),
    ({"unknown": 1}, "validation_error"),
])
def test_create_conversation_bad_input(client, body, code):
    error(client.post("/api/v1/conversations", headers=h("c"), json=body), 400, code)


def test_only_customers_open_conversations(client):
    error(client.post("/api/v1/conversations", headers=h("a", "agent"), json={}), 403)
    error(client.post("/api/v1/conversations", json={}), 401)


def test_list_conversations_visibility_and_cursor(client, assigned):
    others = [open_conv(client, "cust-2")["id"] for _ in range(3)]
    mine = client.get("/api/v1/conversations", headers=h("cust-2")).get_json()
    assert [c["id"] for c in mine["conversations"]] == others[::-1]
    page1 = client.get("/api/v1/conversations?limit=2", headers=h("cust-2")).get_json()
    page2 = client.get(f"/api/v1/conversations?limit=2&cursor={page1['next_cursor']}",
                       headers=h("cust-2")).get_json()
    assert [c["id"] for c in page1["conversations"] + page2["conversations"]] == others[::-1]
    agent = client.get("/api/v1/conversations", headers=h("agent-a", "agent")).get_json()
    assert {c["id"] for c in agent["conversations"]} == {assigned["id"], *others}  # queue visible
    active = client.get("/api/v1/conversations?status=active", headers=h("agent-a", "agent")).get_json()
    assert [c["id"] for c in active["conversations"]] == [assigned["id"]]
    assert active["conversations"][0]["unread_count"] == 1
    error(client.get("/api/v1/conversations?status=bogus", headers=h("cust-2")), 400)
    error(client.get("/api/v1/conversations?cursor=@@", headers=h("cust-2")), 400, "validation_error")


@BOTH_ENGINES
def test_non_participants_get_403_and_unknown_404(client, assigned):
    cid = assigned["id"]
    error(client.get(f"/api/v1/conversations/{cid}", headers=h("cust-9")), 403, "not_participant")
    error(send(client, cid, "cust-9", "customer"), 403, "not_participant")
    make_agent(client, "agent-b")
    error(send(client, cid, "agent-b", "agent"), 403, "not_participant")
    error(client.get(f"/api/v1/conversations/{cid}/messages", headers=h("agent-b", "agent")), 403)
    error(client.get("/api/v1/conversations/nope", headers=h("cust-1")), 404, "conversation_not_found")
    error(client.get("/api/v1/conversations/bad%20id", headers=h("cust-1")), 400, "invalid_id")
    assert client.get(f"/api/v1/conversations/{cid}", headers=ADMIN).status_code == 200


# ---- messages ---------------------------------------------------------------------

@BOTH_ENGINES
def test_messages_client_id_idempotency(client, assigned, events):
    cid = assigned["id"]
    first = send(client, cid, "cust-1", "customer", "one", client_id="c-1")
    assert first.status_code == 201
    again = send(client, cid, "cust-1", "customer", "one", client_id="c-1")
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    received = events.named("message:receive", f"conversation:{cid}")
    assert [e.data["id"] for e in received].count(first.get_json()["id"]) == 1
    msg = first.get_json()
    assert msg["sender_type"] == "customer" and msg["status"] == "sent"
    assert msg["content"] == {"text": "one", "attachments": [], "metadata": {}}


@BOTH_ENGINES
def test_a_send_keeps_the_conversation_up_to_date(client, assigned, services):
    from models import Conversation, Message
    cid = assigned["id"]

    def conv():
        with services.session() as s:
            return s.get(Conversation, cid)

    first = send(client, cid, "cust-1", "customer", "one").get_json()
    waiting_since = conv().awaiting_reply_since
    assert waiting_since is not None
    assert conv().last_message_at.isoformat().replace("+00:00", "Z") == first["created_at"]
    second = send(client, cid, "cust-1", "customer", "two").get_json()
    after = conv()
    assert after.awaiting_reply_since == waiting_since  # the oldest unanswered one stays
    assert after.last_message_at.isoformat().replace("+00:00", "Z") == second["created_at"]
    assert send(client, cid, "agent-a", "agent", "three").status_code == 201
    assert conv().awaiting_reply_since is None
    with services.session() as s:
        stored = s.get(Message, second["id"])
        assert (stored.sender_id, stored.sender_type, stored.content["text"]) == \
            ("cust-1", "customer", "two")
    # a client_id is the sender's own: the agent cannot take the customer's
    assert send(client, cid, "cust-1", "customer", "k", client_id="k-1").status_code == 201
    error(send(client, cid, "agent-a", "agent", "k", client_id="k-1"), 409, "client_id_taken")


@BOTH_ENGINES
@pytest.mark.parametrize("body,status,code", [
    ({"content": {"text": "x" * 10_001}}, 400, "validation_error"),
    ({"content": {"text": ""}}, 400, "empty_message"),
    ({"content": {}}, 400, "empty_message"),
    ({"content": "hi"}, 400, "validation_error"),
    ({"content": {"text": "hi"}, "message_type": "system"}, 400, "validation_error"),
    ({"content": {"text": "hi"}, "message_type": "image"}, 400, "missing_attachment"),
    ({"content": {"text": 5}}, 400, "validation_error"),
    ({"content": {"text": "hi"}, "client_id": ""}, 400, "validation_error"),
])
def test_bad_messages(client, assigned, body, status, code):
    r = client.post(f"/api/v1/conversations/{assigned['id']}/messages", headers=h("cust-1"), json=body)
    error(r, status, code)


def test_history_after_before_limit(client, assigned):
    cid = assigned["id"]
    ids = [send(client, cid, "cust-1", "customer", f"m{i}").get_json()["id"] for i in range(6)]
    url = f"/api/v1/conversations/{cid}/messages"

    def texts(q: str) -> list[str]:
        r = client.get(url + q, headers=h("agent-a", "agent"))
        assert r.status_code == 200, r.get_data(as_text=True)
        return [m["content"]["text"] for m in r.get_json()["messages"]]
    assert texts("?limit=2") == ["m4", "m5"]
    assert texts(f"?after={ids[1]}&limit=2") == ["m2", "m3"]
    assert texts(f"?before={ids[3]}&limit=2") == ["m1", "m2"]
    assert texts(f"?after={ids[0]}&before={ids[4]}") == ["m1", "m2", "m3"]
    assert texts("")[-6:] == [f"m{i}" for i in range(6)]
    error(client.get(url + "?limit=201", headers=h("cust-1")), 400)
    error(client.get(url + "?after=unknown", headers=h("cust-1")), 400, "invalid_cursor")


def test_receipts_sent_delivered_read(client, assigned, events):
    cid = assigned["id"]
    m1 = send(client, cid, "cust-1", "customer", "a").get_json()
    m2 = send(client, cid, "cust-1", "customer", "b").get_json()
    r = client.post(f"/api/v1/conversations/{cid}/delivered", headers=h("agent-a", "agent"),
                    json={"message_id": m1["id"]})
    assert r.status_code == 200 and r.get_json()["status"] == "delivered"
    client.post(f"/api/v1/conversations/{cid}/delivered", headers=h("agent-a", "agent"),
                json={"message_id": m1["id"]})  # a repeat broadcasts nothing new
    assert [e.data for e in events.named("message:delivered")] == [
        {"message_id": m1["id"], "user_id": "agent-a", "conversation_id": cid}]
    r = client.post(f"/api/v1/conversations/{cid}/read", headers=h("agent-a", "agent"),
                    json={"message_id": m2["id"]})
    assert r.status_code == 200 and r.get_json()["marked"] >= 2
    assert [e.data["message_id"] for e in events.named("message:read")] == [m2["id"]]
    hist = client.get(f"/api/v1/conversations/{cid}/messages", headers=h("cust-1")).get_json()
    assert {m["id"]: m["status"] for m in hist["messages"]}[m1["id"]] == "read"
    # the sender's own read is not a receipt; someone else's message id is 404 for bad ones
    error(client.post(f"/api/v1/conversations/{cid}/read", headers=h("agent-a", "agent"),
                      json={"message_id": "nope"}), 404, "message_not_found")
    error(client.post(f"/api/v1/conversations/{cid}/read", headers=h("agent-a", "agent"),
                      json={}), 400, "validation_error")
    error(client.post(f"/api/v1/conversations/{cid}/read", headers=h("cust-7"),
                      json={"message_id": m1["id"]}), 403)


def test_typing_is_ephemeral_and_throttled(client, assigned, events):
    cid = assigned["id"]
    first = client.post(f"/api/v1/conversations/{cid}/typing", headers=h("cust-1"))
    second = client.post(f"/api/v1/conversations/{cid}/typing", headers=h("cust-1"))
    assert first.get_json() == {"sent": True} and second.get_json() == {"sent": False}
    typing = events.named("user:typing", f"conversation:{cid}")
    assert len(typing) == 1 and typing[0].id is None
    assert typing[0].data == {"user_id": "cust-1", "conversation_id": cid}
    error(client.post(f"/api/v1/conversations/{cid}/typing", headers=h("cust-2")), 403)


def test_join_and_leave(client, assigned, events):
    cid = assigned["id"]
    assert client.post(f"/api/v1/conversations/{cid}/join", headers=h("agent-a", "agent")).status_code == 200
    assert client.post(f"/api/v1/conversations/{cid}/leave", headers=h("agent-a", "agent")).status_code == 200
    assert [e.name for e in events if e.name.startswith("conversation:j") or
            e.name.startswith("conversation:l")] == ["conversation:join", "conversation:leave"]
    assert events.named("conversation:join")[0].data == {"conversation_id": cid, "user_id": "agent-a"}


@BOTH_ENGINES
def test_private_notes_never_reach_the_customer(client, assigned, events):
    cid = assigned["id"]
    note = send(client, cid, "agent-a", "agent", "VIP, be nice", private=True)
    assert note.status_code == 201 and note.get_json()["private"] is True
    assert not [e for e in events if e.topic == f"conversation:{cid}" and "be nice" in str(e.data)]
    assert [e.data["id"] for e in events.named("message:note", "agents")] == [note.get_json()["id"]]
    cust = client.get(f"/api/v1/conversations/{cid}/messages", headers=h("cust-1")).get_json()
    assert "VIP, be nice" not in str(cust)
    agent = client.get(f"/api/v1/conversations/{cid}/messages", headers=h("agent-a", "agent")).get_json()
    assert "VIP, be nice" in str(agent)
    admin = client.get(f"/api/v1/conversations/{cid}/messages", headers=ADMIN).get_json()
    assert "VIP, be nice" in str(admin)
    error(send(client, cid, "cust-1", "customer", "sneaky", private=True), 403, "agents_only")
    error(client.post(f"/api/v1/conversations/{cid}/read", headers=h("cust-1"),
                      json={"message_id": note.get_json()["id"]}), 404)
    # the customer's unread count ignores notes
    listed = client.get("/api/v1/conversations", headers=h("cust-1")).get_json()["conversations"]
    assert listed[0]["unread_count"] == 0  # neither the system message nor the note
    send(client, cid, "agent-a", "agent", "Hello!")
    listed = client.get("/api/v1/conversations", headers=h("cust-1")).get_json()["conversations"]
    assert listed[0]["unread_count"] == 1


@BOTH_ENGINES
def test_agent_reply_records_first_response_and_notifies_offline_customer(client, assigned, services):
    from models import Agent, Notification
    cid = assigned["id"]
    assert send(client, cid, "agent-a", "agent", "On its way").status_code == 201
    conv = client.get(f"/api/v1/conversations/{cid}", headers=h("cust-1")).get_json()
    assert conv["first_response_at"] is not None
    with services.session() as s:
        agent = s.get(Agent, "agent-a")
        assert agent.responses_count == 1 and agent.response_time_avg is not None
        notes = s.query(Notification).filter_by(user_id="cust-1", type="chat_message").all()
        assert len(notes) == 1 and notes[0].data["conversation_id"] == cid


# ---- resolve, archive, rating ---------------------------------------------------------

@BOTH_ENGINES
def test_resolve_rate_once(client, assigned, services, events):
    from models import Agent
    cid = assigned["id"]
    error(client.post(f"/api/v1/conversations/{cid}/rating", headers=h("cust-1"), json={"score": 5}),
          409, "not_resolved")
    error(client.post(f"/api/v1/conversations/{cid}/resolve", headers=h("cust-1")), 403)
    r = client.post(f"/api/v1/conversations/{cid}/resolve", headers=h("agent-a", "agent"))
    assert r.status_code == 200 and r.get_json()["status"] == "resolved" and r.get_json()["resolved_at"]
    error(client.post(f"/api/v1/conversations/{cid}/resolve", headers=h("agent-a", "agent")), 409)
    with services.session() as s:
        assert s.get(Agent, "agent-a").current_conversations == 0
    error(client.post(f"/api/v1/conversations/{cid}/rating", headers=h("cust-1"), json={"score": 6}), 400)
    error(client.post(f"/api/v1/conversations/{cid}/rating", headers=h("cust-2"), json={"score": 4}), 403)
    r = client.post(f"/api/v1/conversations/{cid}/rating", headers=h("cust-1"),
                    json={"score": 4, "comment": "quick"})
    assert r.status_code == 200 and r.get_json()["rating"] == {"score": 4, "comment": "quick"}
    error(client.post(f"/api/v1/conversations/{cid}/rating", headers=h("cust-1"), json={"score": 1}),
          409, "already_rated")
    with services.session() as s:
        assert s.get(Agent, "agent-a").satisfaction_rating == 4.0
    error(send(client, cid, "cust-1", "customer", "more"), 409, "conversation_closed")
    r = client.post(f"/api/v1/conversations/{cid}/archive", headers=h("agent-a", "agent"))
    assert r.status_code == 200 and r.get_json()["status"] == "archived"
    assert events.named("conversation:archived")[0].data == {"conversation_id": cid}
    error(client.post(f"/api/v1/conversations/{cid}/archive", headers=h("agent-a", "agent")), 409)


def test_archive_an_active_conversation_frees_the_slot(client, assigned, services):
    from models import Agent
    r = client.post(f"/api/v1/conversations/{assigned['id']}/archive", headers=ADMIN)
    assert r.status_code == 200
    with services.session() as s:
        assert s.get(Agent, "agent-a").current_conversations == 0


# ---- agents, customers, canned -------------------------------------------------------------

def test_agents_put_get_and_status(client, events):
    make_agent(client, "agent-a", limit=4, skills=["EN", "th"], online=False)
    agents = client.get("/api/v1/agents", headers=h("agent-a", "agent")).get_json()["agents"]
    assert agents[0] | {} == {**agents[0], "id": "agent-a", "skills": ["en", "th"],
                               "concurrent_limit": 4, "current_conversations": 0, "status": "offline"}
    r = client.put("/api/v1/agents/agent-a/status", headers=ADMIN, json={"status": "busy"})
    assert r.status_code == 200 and r.get_json()["status"] == "busy"
    assert events.named("agent:available", "agents")[-1].data == {"agent_id": "agent-a", "status": "busy"}
    error(client.put("/api/v1/agents/ghost/status", headers=ADMIN, json={"status": "online"}), 404)
    error(client.put("/api/v1/agents/me/status", headers=h("agent-a", "agent"), json={"status": "away"}), 400)
    error(client.put("/api/v1/agents/x", headers=h("agent-a", "agent"), json={"name": "x"}), 403)
    error(client.put("/api/v1/agents/x", headers=ADMIN, json={"name": "x", "concurrent_limit": -1}), 400)
    error(client.get("/api/v1/agents", headers=h("cust-1")), 403)


def test_customers_put(client):
    r = client.put("/api/v1/customers/cust-5", headers=h("store", "service"),
                   json={"name": "Ann", "is_vip": True, "lifetime_value": 12000, "language": "th"})
    assert r.status_code == 200 and r.get_json()["is_vip"] is True
    r = client.put("/api/v1/customers/cust-5", headers=h("store", "service"), json={"phone": "+66"})
    assert r.get_json()["lifetime_value"] == 12000 and r.get_json()["phone"] == "+66"
    error(client.put("/api/v1/customers/cust-5", headers=h("cust-5"), json={"is_vip": True}), 403)
    error(client.put("/api/v1/customers/cust-5", headers=ADMIN, json={"lifetime_value": -3}), 400)


def test_canned_responses(client):
    a = h("agent-a", "agent")
    assert client.put("/api/v1/canned-responses/thanks", headers=a,
                      json={"text": "Thank you!"}).status_code == 200
    client.put("/api/v1/canned-responses/thanks", headers=a, json={"text": "Thanks a lot!"})
    listed = client.get("/api/v1/canned-responses", headers=a).get_json()["canned_responses"]
    assert [(c["shortcut"], c["text"]) for c in listed] == [("thanks", "Thanks a lot!")]
    error(client.get("/api/v1/canned-responses", headers=h("cust-1")), 403)
    error(client.delete("/api/v1/canned-responses/thanks", headers=a), 403)
    assert client.delete("/api/v1/canned-responses/thanks", headers=ADMIN).status_code == 204
    error(client.delete("/api/v1/canned-responses/thanks", headers=ADMIN), 404)


def test_stats_section(client, assigned):
    cid = assigned["id"]
    send(client, cid, "agent-a", "agent", "hello")
    client.post(f"/api/v1/conversations/{cid}/resolve", headers=h("agent-a", "agent"))
    client.post(f"/api/v1/conversations/{cid}/rating", headers=h("cust-1"), json={"score": 5})
    open_conv(client, "cust-2")
    chat = client.get("/api/v1/stats", headers=ADMIN).get_json()["chat"]
    assert chat["waiting"] == 1 and chat["agents_online"] == 1
    assert chat["first_response_seconds"]["count"] == 1
    assert chat["resolution_seconds"]["count"] == 1 and chat["resolution_seconds"]["p90"] is not None
    assert chat["csat"] == {"count": 1, "avg": 5.0, "satisfied_share": 1.0}


# ---- the same commands over WebSocket emit --------------------------------------------------------

@BOTH_ENGINES
def test_ws_commands_call_the_same_actions(app, client, assigned, events):
    cid = assigned["id"]
    cust, agent = Principal("cust-1", "customer"), Principal("agent-a", "agent")
    with app.app_context():
        ack = run_command(cust, "message:send", {"conversation_id": cid, "client_id": "w1",
                                                 "content": {"text": "over ws"}})
        assert ack["content"]["text"] == "over ws" and ack["duplicate"] is False
        again = run_command(cust, "message:send", {"conversation_id": cid, "client_id": "w1",
                                                   "content": {"text": "over ws"}})
        assert again["id"] == ack["id"] and again["duplicate"] is True
        assert run_command(agent, "message:delivered", {"message_id": ack["id"]})["status"] == "delivered"
        assert run_command(agent, "message:read", {"message_id": ack["id"],
                                                   "conversation_id": cid})["marked"] >= 1
        assert run_command(cust, "user:typing", {"conversation_id": cid}) == {"sent": True}
        assert run_command(agent, "conversation:join", {"conversation_id": cid})["user_id"] == "agent-a"
        assert run_command(agent, "conversation:leave", {"conversation_id": cid})["user_id"] == "agent-a"
        assert run_command(agent, "agent:available", {"status": "busy"})["status"] == "busy"
        # Refused as over HTTP: one refusal type, answered by the op handler as a failed ack.
        with pytest.raises(Refusal) as exc:
            run_command(Principal("cust-2", "customer"), "message:send",
                        {"conversation_id": cid, "content": {"text": "x"}})
        assert exc.value.code == "not_participant" and exc.value.status == 403
        with pytest.raises(Refusal) as exc:
            run_command(cust, "message:send", {"conversation_id": cid})
        assert exc.value.code == "validation_error"
        with pytest.raises(CommandError) as exc:
            run_command(cust, "agent:available", {"status": "online"})
        assert exc.value.status == 403
    names = [e.name for e in events if e.topic == f"conversation:{cid}"]
    for name in ("message:receive", "message:delivered", "message:read", "user:typing",
                 "conversation:join", "conversation:leave"):
        assert name in names


@BOTH_ENGINES
def test_a_message_written_in_the_queue_awaits_an_answer_from_the_assignment(client, assigned, services):
    """The opening message starts the unanswered clock; the agent's time starts when they get it."""
    from models import Conversation
    with services.session() as s:
        conv = s.get(Conversation, assigned["id"])
        assert conv.awaiting_reply_since == conv.assigned_at is not None
    assert send(client, assigned["id"], "agent-a", "agent").status_code == 201
    with services.session() as s:
        assert s.get(Conversation, assigned["id"]).awaiting_reply_since is None


@BOTH_ENGINES
def test_a_committed_message_is_answered_even_when_its_announcement_fails(client, assigned, services,
                                                                          monkeypatch):
    """Stored is stored: Redis away after the commit must not turn the send into an error (a
    retry would store it twice), on either writer; the failure is logged and counted."""
    from models.session import AFTER_COMMIT_FAILURES

    def failures() -> float:
        return sum(AFTER_COMMIT_FAILURES.labels(name)._value.get() for name in ("publish", "publish_many"))

    def down(_events):
        raise ConnectionError("redis away")
    before = failures()
    monkeypatch.setattr(services.bus, "publish_many", down)
    resp = send(client, assigned["id"], "cust-1", "customer", text="still stored")
    assert resp.status_code == 201
    monkeypatch.undo()
    history = client.get(f"/api/v1/conversations/{assigned['id']}/messages", headers=h("cust-1")).get_json()
    assert history["messages"][-1]["content"]["text"] == "still stored"
    assert failures() == before + 1
