"""Several processes on real Redis and PostgreSQL: two web processes and a Celery worker."""
from __future__ import annotations

import uuid

import pytest
import requests
from celery import Celery

from tests.support.clients import SseClient, WsClient, auth, token
from tests.support.procs import WebServer, Worker

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def cluster(procs, bus_env):
    a = procs.start(WebServer(bus_env, procs.log_dir, "web-a"))
    b = procs.start(WebServer(bus_env, procs.log_dir, "web-b"))
    return a, b


def publish(server, topic, event, data, **extra):
    resp = requests.post(f"{server.url}/api/v1/broadcast", headers=auth("store", "service"),
                         json={"topic": topic, "event": event, "data": data, **extra}, timeout=10)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def test_event_published_through_one_process_reaches_a_client_of_the_other(cluster):
    a, b = cluster
    topic = f"product:{uuid.uuid4().hex[:8]}"
    ws = WsClient(b.url, token("viewer-1"))
    ws.subscribe(topic)
    eid = publish(a, topic, "inventory_update", {"available_quantity": 4})
    frame = ws.until(lambda f: f.get("event") == "inventory_update")
    assert frame == {"event": "inventory_update", "topic": topic, "id": eid,
                     "ts": frame["ts"], "data": {"available_quantity": 4}}
    ws.close()


def test_event_published_by_a_celery_task_reaches_ws_and_sse_clients(procs, bus_env, cluster):
    a, b = cluster
    procs.start(Worker(bus_env, procs.log_dir, queues="notifications", concurrency=1))
    topic = f"product:{uuid.uuid4().hex[:8]}"
    ws = WsClient(a.url, token("viewer-2"))
    ws.subscribe(topic)
    sse = SseClient(b.url, token("viewer-3"), [topic])
    sender = Celery(broker=REDIS_URL)
    sender.conf.broker_transport_options = {"global_keyprefix": bus_env["REDIS_PREFIX"] + "celery:"}
    sender.send_task("tasks.broadcast.publish_event", args=[topic, "inventory_update", {"n": 1}],
                     queue="notifications")
    ws_frame = ws.until(lambda f: f.get("event") == "inventory_update", timeout=30)
    sse_item = sse.until(lambda e: e.get("event") == "inventory_update", timeout=30)
    assert ws_frame["data"] == {"n": 1} and sse_item["frame"]["id"] == ws_frame["id"]
    ws.close()
    sse.close()


def test_readyz_lists_live_workers_per_queue(procs, bus_env, cluster):
    a, _ = cluster
    body = requests.get(f"{a.url}/readyz", timeout=10).json()
    assert body["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}
    assert "routing" in body["unconsumed_queues"]
    procs.start(Worker(bus_env, procs.log_dir, queues="routing", concurrency=1))

    def listed():
        return requests.get(f"{a.url}/readyz", timeout=10).json()

    import time
    deadline = time.monotonic() + 30
    body = listed()
    while not body["queues"]["routing"] and time.monotonic() < deadline:
        body = listed()  # each call waits up to 1 s for worker replies
    assert body["queues"]["routing"], body
    assert "routing" not in body["unconsumed_queues"]
    assert "tracking" in body["unconsumed_queues"]
