"""50 conversations routed at once by two Celery worker processes on PostgreSQL, with Redis
and with RabbitMQ as the broker: no agent ever gets more than its concurrent_limit."""
from __future__ import annotations

import time
from collections import Counter

import pytest
from celery import Celery
from sqlalchemy import select

from models import Agent, Conversation, User, make_engine, make_session_factory, session_scope
from tests.support.clients import WsClient, token
from tests.support.brokers import celery_for, queue_length
from tests.support.databases import fresh_pg_database
from tests.support.procs import WebServer, Worker

LIMITS = {"race-a": 3, "race-b": 1, "race-c": 4, "race-d": 2, "race-e": 5}  # 15 slots


@pytest.fixture
def own_db():
    """A database of this test's own: routing looks at every online agent in it."""
    with fresh_pg_database("sb_race") as url:
        yield url


def _queues_drained(sender: Celery) -> bool:
    if queue_length(sender, "routing"):
        return False
    inspect = sender.control.inspect(timeout=1.0)
    busy = [t for tasks in (inspect.active() or {}).values() for t in tasks]
    busy += [t for tasks in (inspect.reserved() or {}).values() for t in tasks]
    return not busy


def test_fifty_conversations_routed_at_once_never_exceed_limits(procs, own_db, broker_env):
    # The deployed policy, derived hold on: every pass learns from PostgreSQL (nothing to hold
    # here: every agent and conversation is English).
    env = {**broker_env, "DATABASE_URL": own_db}
    engine = make_engine(own_db.replace("postgresql://", "postgresql+psycopg://"))
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        for aid, limit in LIMITS.items():
            s.add(User(id=aid, role="agent"))
            s.add(Agent(user_id=aid, name=aid, skills=["en"], status="online",
                        concurrent_limit=limit, current_conversations=0))
        conv_ids = []
        for i in range(50):
            s.add(User(id=f"race-cust-{i}", role="customer"))
            conv = Conversation(customer_id=f"race-cust-{i}", status="waiting",
                                meta={"language": "en"}, priority=("low", "medium", "high")[i % 3])
            s.add(conv)
            s.flush()
            conv_ids.append(conv.id)

    web = procs.start(WebServer(env, procs.log_dir, "web"))
    watcher = WsClient(web.url, token("race-admin", "admin"))
    watcher.subscribe("agents")
    workers = [procs.start(Worker(env, procs.log_dir, f"routing-{n}", queues="routing", concurrency=4))
               for n in (1, 2)]

    sender = celery_for(env)
    for worker in workers:
        worker.wait_consuming(sender)
    for cid in conv_ids:
        sender.send_task("tasks.routing.route_conversation", args=[cid], queue="routing")

    assigned = watcher.events("agent:assigned", sum(LIMITS.values()), timeout=90)
    per_agent = Counter(f["data"]["agent_id"] for f in assigned)
    assert all(per_agent[a] <= limit for a, limit in LIMITS.items()), per_agent

    deadline = time.monotonic() + 60
    while not _queues_drained(sender):  # each inspect waits up to 1 s for replies
        assert time.monotonic() < deadline, "routing tasks still running"
    with session_scope(sessions) as s:
        agents = {a.user_id: a for a in s.scalars(select(Agent)).all()}
        held = Counter(s.scalars(select(Conversation.agent_id).where(Conversation.status == "active")).all())
        statuses = Counter(s.scalars(select(Conversation.status)).all())
    engine.dispose()
    for aid, limit in LIMITS.items():
        assert agents[aid].current_conversations == held[aid] == limit, (aid, held)
    assert statuses == {"active": 15, "waiting": 35}
    # each worker process took part (the race is real)
    logs = [w.log_path.read_text(errors="replace") for w in workers]
    assert all("tasks.routing.route_conversation" in log and "succeeded" in log for log in logs), \
        [w.tail() for w in workers]
    # no extra assignment event arrived after the 15
    with pytest.raises(TimeoutError):
        watcher.until(lambda f: f.get("event") == "agent:assigned", timeout=1)
    watcher.close()
