"""Inventory rules on PostgreSQL only: which path a hold takes, and which location it goes to.

The rules that hold on both engines are in tests/unit/test_inventory.py (run on
SQLite and PostgreSQL); here, what only PostgreSQL has: the one-statement (batched)
path of actions/inventory/batch.py beside the locked path.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Reservation, StockLevel
from tests.support.clients import auth
from tests.support.inventory import age, available, events, reserve, set_stock

pytestmark = pytest.mark.engines("postgresql")


def test_each_hold_takes_the_path_that_can_settle_it(app, client, monkeypatch):
    """Plain holds in one statement; a threshold crossing, a reclaim, a refusal that only
    reclaiming could avoid: the locked path. Both announce the same figures."""
    from actions.inventory import batch
    from models import Notification
    taken = []
    together = batch.take_together
    monkeypatch.setattr(batch._together, "_run",
                        lambda *a: taken.append(together(*a)[0]) or [taken[-1]])
    client.get("/api/v1/stats", headers=auth("boss", "admin"))  # the admin's user row
    set_stock(client, "pq", 10, low_stock_threshold=3)
    first = reserve(client, "pq", 2).get_json()
    assert taken == [True] and first["status"] == "held"
    assert events(app, "product:pq", "inventory_update")[-1]["available_quantity"] == 8
    alert = events(app, "admin", "inventory_alert")[-1]
    assert (alert["previous_quantity"], alert["current_quantity"], alert["change_type"],
            alert["location"]) == (10, 8, "reservation", "default")

    assert reserve(client, "pq", 5, who="c2").status_code == 201  # 8 -> 3: crosses
    assert taken[-1] is False
    reserve(client, "pq", 1, who="c3")  # already low: nothing to flip
    assert taken[-1] is True
    with app.extensions["switchboard"].session() as s:
        sent = s.scalars(select(Notification).where(Notification.user_id == "boss",
                                                    Notification.type == "inventory_alert")).all()
    assert len(sent) == 1 and sent[0].data["current_quantity"] == 3

    age(app, first["reservation_id"])  # 2 units free once reclaimed, 2 now
    assert available(client, "pq") == 4
    assert reserve(client, "pq", 4, who="c4").status_code == 201
    assert taken[-1] is False  # only the locked path reclaims
    assert reserve(client, "pq", 1, who="c5").status_code == 409
    assert events(app, "product:pq", "out_of_stock")[-1]["available_quantity"] == 0
    with app.extensions["switchboard"].session() as s:
        level = s.scalar(select(StockLevel).where(StockLevel.product_id == "pq"))
        assert (level.on_hand, level.held) == (10, 10)


def test_a_hold_goes_to_the_first_location_with_room(client):
    for location, qty in (("a-shelf", 1), ("b-shelf", 5)):
        res = client.put("/api/v1/products/pl/stock", headers=auth("store", "service"),
                         json={"quantity": qty, "location": location})
        assert res.status_code == 200
    held = reserve(client, "pl", 3)
    assert held.status_code == 201
    assert available(client, "pl") == 3
    one = reserve(client, "pl", 1, who="c2")
    assert one.status_code == 201
    with client.application.extensions["switchboard"].session() as s:
        got = {r.id: r.location for r in s.scalars(select(Reservation)).all()}
    assert got == {held.get_json()["reservation_id"]: "b-shelf",
                   one.get_json()["reservation_id"]: "a-shelf"}
