"""Chat end to end over WebSocket on two web processes and a routing worker (Redis + PostgreSQL)."""
from __future__ import annotations

import uuid

import requests

from tests.support.clients import WsClient, auth, token
from tests.support.procs import WebServer, Worker


def test_customer_and_agent_chat_across_processes(procs, stack_env):
    env = {**stack_env, "SB_ROUTING_HOLD": "0"}
    a = procs.start(WebServer(env, procs.log_dir, "web-a"))
    b = procs.start(WebServer(env, procs.log_dir, "web-b"))
    procs.start(Worker(env, procs.log_dir, queues="routing,notifications", concurrency=2))
    agent_id, cust_id = f"ag-{uuid.uuid4().hex[:6]}", f"cu-{uuid.uuid4().hex[:6]}"
    r = requests.put(f"{a.url}/api/v1/agents/{agent_id}", headers=auth("adm", "admin"),
                     json={"name": "Ada", "skills": ["en"], "concurrent_limit": 2}, timeout=10)
    assert r.status_code in (200, 201), r.text

    agent = WsClient(b.url, token(agent_id, "agent"))
    ack = agent.request({"op": "emit", "event": "agent:available", "data": {"status": "online"}})
    assert ack["ok"] and ack["data"]["status"] == "online", ack

    r = requests.post(f"{a.url}/api/v1/conversations", headers=auth(cust_id, "customer"),
                      json={"text": "Hello?", "metadata": {"language": "en"}}, timeout=10)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    # the routing worker assigns it; the agent hears it on their own topic
    assigned = agent.until(lambda f: f.get("event") == "agent:assigned"
                           and f["data"]["conversation_id"] == cid, timeout=30)
    assert assigned["topic"] == f"user:{agent_id}"
    agent.subscribe(f"conversation:{cid}")

    customer = WsClient(a.url, token(cust_id, "customer"))
    customer.subscribe(f"conversation:{cid}")
    sent = customer.request({"op": "emit", "event": "message:send",
                             "data": {"conversation_id": cid, "client_id": "k1",
                                      "content": {"text": "<b>where</b> is my order"}}})
    assert sent["ok"], sent
    got = agent.until(lambda f: f.get("event") == "message:receive"
                      and f["data"]["client_id"] == "k1")
    assert got["data"]["content"]["text"] == "<b>where</b> is my order"
    mid = got["data"]["id"]
    assert agent.request({"op": "emit", "event": "message:delivered",
                          "data": {"message_id": mid}})["ok"]
    customer.until(lambda f: f.get("event") == "message:delivered" and f["data"]["message_id"] == mid)
    agent.request({"op": "emit", "event": "user:typing", "data": {"conversation_id": cid}})
    typing = customer.until(lambda f: f.get("event") == "user:typing")
    assert typing["id"] is None and typing["data"]["user_id"] == agent_id
    agent.request({"op": "emit", "event": "message:read", "data": {"message_id": mid}})
    customer.until(lambda f: f.get("event") == "message:read" and f["data"]["message_id"] == mid)
    reply = agent.request({"op": "emit", "event": "message:send",
                           "data": {"conversation_id": cid, "content": {"text": "Shipped today"}}})
    assert reply["ok"]
    customer.until(lambda f: f.get("event") == "message:receive"
                   and f["data"]["sender_id"] == agent_id)
    # a note never reaches the customer's topic
    note = agent.request({"op": "emit", "event": "message:send",
                          "data": {"conversation_id": cid, "private": True,
                                   "content": {"text": "internal"}}})
    assert note["ok"] and note["data"]["private"] is True

    # the agent's connection drops: they go offline, the customer sees it
    agent.close()
    off = customer.until(lambda f: f.get("event") == "user:offline", timeout=20)
    assert off["data"]["user_id"] == agent_id
    agents = requests.get(f"{a.url}/api/v1/agents", headers=auth("adm", "admin"), timeout=10).json()
    me = next(x for x in agents["agents"] if x["id"] == agent_id)
    assert me["status"] == "offline" and me["current_conversations"] == 1
    assert "internal" not in str(customer.frames)
    customer.close()
