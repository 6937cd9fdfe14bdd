"""`python app.py` with no REDIS_URL: the whole system in one process, on SQLite."""
from __future__ import annotations

import time

import requests

from tests.support.clients import SseClient, WsClient, auth, token
from tests.support.procs import EmbeddedServer


def test_embedded_mode_serves_realtime_and_runs_delayed_tasks_on_time(procs, tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/embedded.db"}
    server = procs.start(EmbeddedServer(env, procs.log_dir))
    ready = requests.get(f"{server.url}/readyz", timeout=10).json()
    assert ready["checks"] == {"database": "ok", "broker": "ok"}
    assert ready["unconsumed_queues"] == []

    ws = WsClient(server.url, token("shopper"))
    ws.subscribe("product:lamp")
    sse = SseClient(server.url, token("shopper"), ["product:lamp"])
    now = requests.post(f"{server.url}/api/v1/broadcast", headers=auth("store"), timeout=10,
                        json={"topic": "product:lamp", "event": "inventory_update", "data": {"q": 1}})
    assert now.status_code == 202
    assert ws.until(lambda f: f.get("event") == "inventory_update")["id"] == now.json()["id"]
    assert sse.until(lambda e: e.get("event") == "inventory_update")["frame"]["data"] == {"q": 1}

    # A countdown is honoured by the in-process worker: not run at once, run on time.
    asked = time.monotonic()
    later = requests.post(f"{server.url}/api/v1/broadcast", headers=auth("store"), timeout=10,
                          json={"topic": "product:lamp", "event": "price_drop", "data": {"p": 9},
                                "delay_seconds": 2})
    assert later.json() == {"id": None, "scheduled": True}
    frame = ws.until(lambda f: f.get("event") == "price_drop", timeout=15)
    assert time.monotonic() - asked >= 1.9
    assert frame["data"] == {"p": 9}
    ws.close()
    sse.close()


def test_embedded_worker_expires_a_reservation_by_itself(procs, tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/embedded.db", "RESERVATION_TTL_SECONDS": "2"}
    server = procs.start(EmbeddedServer(env, procs.log_dir))
    stock = requests.put(f"{server.url}/api/v1/products/kettle/stock", headers=auth("store"),
                         json={"quantity": 3}, timeout=10)
    assert stock.status_code == 200, stock.text
    ws = WsClient(server.url, token("buyer"))
    ws.subscribe("product:kettle")
    held = requests.post(f"{server.url}/api/v1/reservations", headers=auth("buyer", "customer"),
                         json={"product_id": "kettle", "quantity": 2}, timeout=10)
    assert held.status_code == 201, held.text
    ws.until(lambda f: f.get("event") == "inventory_update"
             and f["data"]["available_quantity"] == 1)
    # Nobody commits: the in-process worker expires the hold (ETA task or sweep).
    back = ws.until(lambda f: f.get("event") == "inventory_update"
                    and f["data"]["available_quantity"] == 3, timeout=20)
    assert back["data"]["is_in_stock"] is True
    ws.close()
