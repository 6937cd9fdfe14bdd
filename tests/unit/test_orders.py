"""Orders: lifecycle, history, broadcasts, notification, analytics (SQLite, in-memory bus)."""
from __future__ import annotations

from sqlalchemy import select

from broadcast.events import BEFORE_FIRST
from models import AnalyticsEvent, Notification
from tests.support.clients import auth

SVC = auth("store", "service")


def events(app, topic, name):
    got, _ = app.extensions["switchboard"].bus.history(topic, BEFORE_FIRST)
    return [e.data for e in got if e.name == name]


def test_create_then_move_along_with_history_broadcasts_and_notifications(app, client):
    res = client.put("/api/v1/orders/o1", json={"customer_id": "alice"}, headers=SVC)
    assert res.status_code == 201 and res.get_json()["status"] == "pending"
    assert client.put("/api/v1/orders/o1", json={"customer_id": "alice", "status": "pending"},
                      headers=SVC).status_code == 200
    res = client.post("/api/v1/orders/o1/status", headers=SVC, json={
        "status": "confirmed", "notes": "paid", "tracking_number": "T1",
        "location": {"latitude": 1.5, "longitude": 2.5, "address": "Depot"}})
    assert res.status_code == 200, res.get_json()
    update = events(app, "order:o1", "order_status_update")[-1]
    assert update | {"timestamp": None} == {
        "order_id": "o1", "customer_id": "alice", "previous_status": "pending",
        "current_status": "confirmed", "timestamp": None, "notes": "paid", "tracking_number": "T1",
        "location": {"latitude": 1.5, "longitude": 2.5, "address": "Depot"}}
    assert events(app, "user:alice", "order_status_update")[-1] == update
    assert events(app, "admin", "order_tracking_update")[-1]["current_status"] == "confirmed"
    body = client.get("/api/v1/orders/o1", headers=auth("alice", "customer")).get_json()
    assert [(h["previous_status"], h["status"]) for h in body["history"]] == [
        (None, "pending"), ("pending", "confirmed")]
    with app.extensions["switchboard"].session() as s:
        types = s.scalars(select(Notification.type).where(Notification.user_id == "alice")).all()
        assert types.count("order_status_update") == 2
        names = s.scalars(select(AnalyticsEvent.name).where(AnalyticsEvent.subject_id == "o1")).all()
        assert names == ["order_status_changed"] * 2


def test_illegal_transitions_are_409_and_change_nothing(app, client):
    client.put("/api/v1/orders/o2", json={"customer_id": "bob", "status": "shipped"}, headers=SVC)
    for status in ("in_transit", "out_for_delivery", "delivered"):
        assert client.post("/api/v1/orders/o2/status", json={"status": status},
                           headers=SVC).status_code == 200
    res = client.post("/api/v1/orders/o2/status", json={"status": "pending"}, headers=SVC)
    assert res.status_code == 409 and res.get_json()["error"]["code"] == "illegal_transition"
    res = client.put("/api/v1/orders/o2", json={"customer_id": "bob", "status": "processing"},
                     headers=SVC)
    assert res.status_code == 409
    assert client.get("/api/v1/orders/o2", headers=SVC).get_json()["status"] == "delivered"
    assert len(events(app, "order:o2", "order_status_update")) == 4
    assert client.post("/api/v1/orders/o2/status", json={"status": "lost"},
                       headers=SVC).status_code == 400
    assert client.post("/api/v1/orders/nope/status", json={"status": "confirmed"},
                       headers=SVC).status_code == 404


def test_only_its_customer_and_admin_see_an_order(client):
    client.put("/api/v1/orders/o3", json={"customer_id": "carol"}, headers=SVC)
    assert client.get("/api/v1/orders/o3", headers=auth("carol", "customer")).status_code == 200
    assert client.get("/api/v1/orders/o3", headers=auth("boss", "admin")).status_code == 200
    assert client.get("/api/v1/orders/o3", headers=auth("mallory", "customer")).status_code == 404
    assert client.put("/api/v1/orders/o3", json={"customer_id": "carol"},
                      headers=auth("carol", "customer")).status_code == 403


def test_stats_sections(client):
    client.put("/api/v1/orders/o4", json={"customer_id": "dan", "status": "shipped"}, headers=SVC)
    body = client.get("/api/v1/stats", headers=auth("boss", "admin")).get_json()
    assert body["orders"]["by_status"]["shipped"] >= 1 and body["orders"]["in_flight"] >= 1
    assert "units_held" in body["inventory"]
