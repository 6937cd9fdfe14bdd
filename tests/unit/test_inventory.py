"""Inventory and reservations on both engines (SQLite, PostgreSQL) and the in-memory bus.

On PostgreSQL a hold takes the one-statement (batched) path first (actions/inventory/batch.py)
and the locked path only for what that cannot settle; SQLite takes the locked path. The same
tests pass on both, so the two paths keep one behaviour.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Notification, Reservation, StockLevel
from tests.support.clients import auth
from tests.support.inventory import age, available, events, reserve, set_stock

pytestmark = pytest.mark.engines("sqlite", "postgresql")


def test_set_adjust_and_get_stock_broadcasts_update_and_alert(app, client):
    set_stock(client, "p1", 10)
    res = client.post("/api/v1/products/p1/stock/adjust", headers=auth("store", "service"),
                      json={"delta": -3, "change_type": "sale"})
    assert res.status_code == 200 and res.get_json()["on_hand"] == 7
    assert client.get("/api/v1/products/p1/stock", headers=auth("v", "customer")).get_json() == {
        "product_id": "p1", "variants": [{"variant_id": None, "available_quantity": 7, "is_in_stock": True}]}
    updates = events(app, "product:p1", "inventory_update")
    assert [u["available_quantity"] for u in updates] == [10, 7]
    alerts = events(app, "admin", "inventory_alert")
    assert alerts[-1] | {"timestamp": None} == {
        "product_id": "p1", "variant_id": None, "previous_quantity": 10, "current_quantity": 7,
        "change_type": "sale", "location": "default", "timestamp": None}


def test_variants_and_locations_add_up(client):
    set_stock(client, "p2", 4, variant_id="red", location="a")
    set_stock(client, "p2", 5, variant_id="red", location="b")
    set_stock(client, "p2", 1, variant_id="blue")
    assert available(client, "p2", "red") == 9 and available(client, "p2", "blue") == 1
    assert reserve(client, "p2", 0).status_code == 400


def test_adjust_cannot_take_held_units_and_customers_cannot_set_stock(client):
    set_stock(client, "p3", 5)
    assert reserve(client, "p3", 4).status_code == 201
    res = client.post("/api/v1/products/p3/stock/adjust", headers=auth("store", "service"),
                      json={"delta": -2, "change_type": "adjustment"})
    assert res.status_code == 409 and res.get_json()["error"]["code"] == "insufficient_stock"
    res = client.put("/api/v1/products/p3/stock", json={"quantity": 3}, headers=auth("store", "service"))
    assert res.status_code == 409
    assert client.put("/api/v1/products/p3/stock", json={"quantity": 3},
                      headers=auth("c1", "customer")).status_code == 403


def test_hold_commit_release_lifecycle(app, client):
    set_stock(client, "p4", 5)
    a = reserve(client, "p4", 2).get_json()
    b = reserve(client, "p4", 2, who="c2").get_json()
    assert available(client, "p4") == 1
    out = reserve(client, "p4", 2, who="c3")
    assert out.status_code == 409 and out.get_json()["error"]["code"] == "out_of_stock"
    assert events(app, "product:p4", "out_of_stock")[-1]["available_quantity"] == 1
    # someone else's reservation is not yours
    assert client.post(f"/api/v1/reservations/{a['reservation_id']}/commit",
                       headers=auth("c2", "customer")).status_code == 403
    assert client.post(f"/api/v1/reservations/{a['reservation_id']}/commit",
                       headers=auth("c1", "customer")).get_json()["status"] == "committed"
    assert client.delete(f"/api/v1/reservations/{a['reservation_id']}",
                         headers=auth("c1", "customer")).status_code == 409
    assert client.delete(f"/api/v1/reservations/{b['reservation_id']}",
                         headers=auth("store", "service")).get_json()["status"] == "released"
    assert client.post(f"/api/v1/reservations/{b['reservation_id']}/commit",
                       headers=auth("c2", "customer")).status_code == 409
    assert available(client, "p4") == 3
    with app.extensions["switchboard"].session() as s:
        level = s.scalar(select(StockLevel).where(StockLevel.product_id == "p4"))
        assert (level.on_hand, level.held) == (3, 0)


def test_idempotency_key_returns_the_first_hold(client):
    set_stock(client, "p5", 5)
    first = reserve(client, "p5", 2, key="checkout-1")
    again = reserve(client, "p5", 2, key="checkout-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["reservation_id"] == first.get_json()["reservation_id"]
    assert available(client, "p5") == 3
    # the key is the owner's: another customer's same key is another hold
    assert reserve(client, "p5", 2, who="c9", key="checkout-1").status_code == 201


def test_an_expired_hold_never_counts_even_before_its_expiry_runs(app, client):
    set_stock(client, "p6", 3)
    rid = reserve(client, "p6", 3).get_json()["reservation_id"]
    assert available(client, "p6") == 0
    age(app, rid)
    assert available(client, "p6") == 3  # nothing processed the expiry yet
    assert reserve(client, "p6", 3, who="c2").status_code == 201  # reclaims it
    assert client.post(f"/api/v1/reservations/{rid}/commit",
                       headers=auth("c1", "customer")).status_code == 409
    with app.extensions["switchboard"].session() as s:
        assert s.get(Reservation, rid).status == "expired"
        level = s.scalar(select(StockLevel).where(StockLevel.product_id == "p6"))
        assert (level.on_hand, level.held) == (3, 3)


def test_expire_task_and_sweep_are_idempotent(app, client):
    from tasks.inventory import expire_due, expire_reservation
    set_stock(client, "p7", 4)
    r1 = reserve(client, "p7", 1).get_json()["reservation_id"]
    r2 = reserve(client, "p7", 2, who="c2").get_json()["reservation_id"]
    assert expire_reservation.run(r1) is False  # not yet due
    age(app, r1)
    age(app, r2)
    assert expire_reservation.run(r1) is True  # reclaims every due hold of the level (r2 too)
    assert expire_reservation.run(r1) is False
    assert expire_due.run() == 0
    set_stock(client, "p7b", 1)
    r3 = reserve(client, "p7b", 1).get_json()["reservation_id"]
    age(app, r3)
    assert expire_due.run() == 1 and expire_due.run() == 0
    assert events(app, "product:p7", "inventory_update")[-1]["available_quantity"] == 4
    with app.extensions["switchboard"].session() as s:
        assert {s.get(Reservation, r).status for r in (r1, r2)} == {"expired"}
        level = s.scalar(select(StockLevel).where(StockLevel.product_id == "p7"))
        assert (level.on_hand, level.held) == (4, 0)


def test_low_stock_notifies_admins_once_per_crossing(app, client):
    client.get("/api/v1/stats", headers=auth("boss", "admin"))  # the admin's user row
    set_stock(client, "p8", 10, low_stock_threshold=3)

    def alerts():
        with app.extensions["switchboard"].session() as s:
            return s.scalars(select(Notification).where(
                Notification.user_id == "boss", Notification.type == "inventory_alert")).all()
    for delta in (-7, -1, -1):  # 3, 2, 1: at or under the threshold three times
        client.post("/api/v1/products/p8/stock/adjust", headers=auth("store", "service"),
                    json={"delta": delta, "change_type": "sale"})
    assert len(alerts()) == 1
    client.post("/api/v1/products/p8/stock/adjust", headers=auth("store", "service"),
                json={"delta": 10, "change_type": "restock"})
    client.post("/api/v1/products/p8/stock/adjust", headers=auth("store", "service"),
                json={"delta": -9, "change_type": "sale"})
    assert len(alerts()) == 2
    assert alerts()[0].data["product_id"] == "p8"


def test_unknown_product_and_reservation(client):
    assert client.get("/api/v1/products/nope/stock", headers=auth("v", "customer")).status_code == 404
    assert reserve(client, "nope", 1).status_code == 404
    assert client.delete("/api/v1/reservations/nope", headers=auth("s", "service")).status_code == 404
    assert client.post("/api/v1/reservations", json={"product_id": "x", "quantity": 1},
                       headers=auth("a", "agent")).status_code == 403


def test_a_released_reservation_is_gone_for_get(client):
    set_stock(client, "p-gone", 5)
    resp = reserve(client, "p-gone", 2)
    rid = resp.get_json()["reservation_id"]
    url = f"/api/v1/reservations/{rid}"
    assert client.get(url, headers=auth("c1", "customer")).get_json()["status"] == "held"
    assert client.delete(url, headers=auth("c1", "customer")).status_code == 200
    gone = client.get(url, headers=auth("c1", "customer"))
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "released"
    assert client.delete(url, headers=auth("c1", "customer")).status_code == 200   # DELETE stays idempotent


def test_on_hand_stock_never_passes_its_limit(client):
    from actions.inventory.stock import MAX_UNITS
    set_stock(client, "p-big", MAX_UNITS)
    resp = client.post("/api/v1/products/p-big/stock/adjust", headers=auth("store", "service"),
                       json={"delta": 1, "change_type": "restock"})
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "stock_limit"
    assert available(client, "p-big") == MAX_UNITS
