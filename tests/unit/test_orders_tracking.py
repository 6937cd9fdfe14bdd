"""Carrier tracking: the DB timer, the sweep, the simulated and HTTP JSON carriers, webhooks.

The HTTP carrier talks over real HTTP to a stand-in server on localhost.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import update

from models import Order, utcnow
from tests.support.clients import auth

SVC = auth("store", "service")


@pytest.fixture
def carrier_server():
    """A stand-in carrier: GET /track/<number> answers what `state` says."""
    state = {"status": 200, "body": {"tracking": {"code": "PICKED"}}, "hits": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            state["hits"].append(self.path)
            data = json.dumps(state["body"]).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()


def carriers_conf(url):
    return json.dumps({"acme": {
        "url": url + "/track/{tracking_number}", "status_field": "tracking.code",
        "status_map": {"PICKED": "shipped", "MOVING": "in_transit", "DONE": "delivered"},
        "location_field": "tracking.where", "webhook_secret": "s3cret"}})


def make_due(app, order_id):
    with app.extensions["switchboard"].session() as s:
        s.execute(update(Order).where(Order.id == order_id).values(next_poll_at=utcnow()))


def get(client, order_id):
    return client.get(f"/api/v1/orders/{order_id}", headers=SVC).get_json()


def test_simulated_carrier_moves_an_order_along_until_delivered(app, client):
    from tasks.tracking import poll_due, poll_order
    client.put("/api/v1/orders/s1", json={"customer_id": "c", "status": "processing",
                                          "carrier": "simulated", "tracking_number": "SIM1"},
               headers=SVC)
    assert get(client, "s1")["next_poll_at"] is not None
    assert poll_due.run() == 1 and poll_due.run() == 0  # claimed once
    seen = []
    for _ in range(6):
        poll_order.run("s1")
        seen.append(get(client, "s1")["status"])
        if seen[-1] == "delivered":
            break
        make_due(app, "s1")
    assert seen == ["shipped", "in_transit", "out_for_delivery", "delivered"]
    body = get(client, "s1")
    assert body["next_poll_at"] is None  # tracking stops once delivered
    assert body["history"][-1]["location"]["address"] == "Front door"
    assert poll_order.run("s1") is False


def test_http_carrier_maps_statuses_and_backs_off_when_failing(make_app, carrier_server):
    from tasks.tracking import poll_order
    app = make_app(carriers_json=carriers_conf(carrier_server["url"]), tracking_poll_seconds=300)
    client = app.test_client()
    client.put("/api/v1/orders/h1", json={"customer_id": "c", "status": "confirmed",
                                          "carrier": "acme", "tracking_number": "A/1"}, headers=SVC)
    assert poll_order.run("h1") is True
    assert carrier_server["hits"] == ["/track/A%2F1"]
    assert get(client, "h1")["status"] == "shipped"
    carrier_server["body"] = {"tracking": {"code": "MOVING", "where": {"address": "Hub"}}}
    poll_order.run("h1")
    body = get(client, "h1")
    assert body["status"] == "in_transit" and body["history"][-1]["location"] == {"address": "Hub"}
    carrier_server["status"] = 503
    before = utcnow()
    poll_order.run("h1")
    poll_order.run("h1")
    with app.extensions["switchboard"].session() as s:
        order = s.get(Order, "h1")
        assert order.poll_failures == 2
        assert order.next_poll_at - before >= timedelta(seconds=1200)  # 300 * 2^2
    carrier_server["status"] = 200
    poll_order.run("h1")
    with app.extensions["switchboard"].session() as s:
        assert s.get(Order, "h1").poll_failures == 0


def test_tracking_stops_after_max_days(app, client):
    from tasks.tracking import poll_order
    client.put("/api/v1/orders/old", json={"customer_id": "c", "status": "shipped",
                                           "carrier": "simulated", "tracking_number": "X"},
               headers=SVC)
    with app.extensions["switchboard"].session() as s:
        s.execute(update(Order).where(Order.id == "old")
                  .values(tracking_started_at=utcnow() - timedelta(days=8)))
    poll_order.run("old")
    assert get(client, "old")["next_poll_at"] is None


def sign(body: bytes, secret="s3cret"):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_webhook_checks_the_signature_and_applies_the_status(make_app, carrier_server):
    app = make_app(carriers_json=carriers_conf(carrier_server["url"]))
    client = app.test_client()
    client.put("/api/v1/orders/w1", json={"customer_id": "c", "status": "shipped",
                                          "carrier": "acme", "tracking_number": "W1"}, headers=SVC)
    raw = json.dumps({"tracking_number": "W1", "tracking": {"code": "DONE"}}).encode()
    url = "/api/v1/carriers/acme/webhook"
    assert client.post(url, data=raw, content_type="application/json").status_code == 401
    assert client.post(url, data=raw, content_type="application/json",
                       headers={"X-Switchboard-Signature": sign(raw, "wrong")}).status_code == 401
    res = client.post(url, data=raw, content_type="application/json",
                      headers={"X-Switchboard-Signature": sign(raw)})
    assert res.status_code == 200 and res.get_json() == {"order_id": "w1", "status": "delivered",
                                                         "applied": True}
    assert get(client, "w1")["history"][-1]["source"] == "webhook"
    assert client.post("/api/v1/carriers/nobody/webhook", data=raw,
                       content_type="application/json").status_code == 404
    other = json.dumps({"tracking_number": "nope", "tracking": {"code": "DONE"}}).encode()
    assert client.post(url, data=other, content_type="application/json",
                       headers={"X-Switchboard-Signature": sign(other)}).status_code == 404


def test_the_eta_poll_and_the_sweep_never_both_poll(app, client):
    from tasks.tracking import poll_due, poll_order
    client.put("/api/v1/orders/e1", json={"customer_id": "c", "status": "processing",
                                          "carrier": "simulated", "tracking_number": "E"},
               headers=SVC)
    poll_order.run("e1")  # first poll: shipped, next poll timed in the row
    with app.extensions["switchboard"].session() as s:
        due = s.get(Order, "e1").next_poll_at
    make_due_at = due - timedelta(seconds=3600)
    with app.extensions["switchboard"].session() as s:
        s.execute(update(Order).where(Order.id == "e1").values(next_poll_at=make_due_at))
    assert poll_due.run() == 1                                   # the sweep claims it...
    assert poll_order.run("e1", make_due_at.isoformat()) is False  # ...so the ETA task does not poll
    assert get(client, "e1")["status"] == "shipped"
