"""The inventory rules of tests/unit/test_inventory.py again, on PostgreSQL.

On PostgreSQL a hold takes the one-statement (batched) path first (actions/inventory/batch.py)
and the locked path only for what that cannot settle; the same tests must pass
on both, so the two paths keep one behaviour.
"""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from settings import Settings, normalise_database_url
from tests.conftest import fresh_pg_database
from tests.unit import test_inventory as rules
from tests.unit.test_inventory import *  # noqa: F401,F403  (the rules, collected here again)

assert rules.__name__  # the star import above is the point of this module


@pytest.fixture(scope="module")
def inventory_pg_url():
    with fresh_pg_database("sb_inv") as url:
        yield url


@pytest.fixture
def make_app(inventory_pg_url):
    """An app on PostgreSQL (emptied for each test) and the in-memory bus."""
    from app import create_app
    engine = create_engine(normalise_database_url(inventory_pg_url))
    with engine.begin() as conn:
        tables = conn.execute(text(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'")).scalar()
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()

    def factory(**overrides):
        settings = Settings.of(database_url=inventory_pg_url, redis_url=None, **overrides)
        return create_app(settings, background=False)
    return factory


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
    rules.set_stock(client, "pq", 10, low_stock_threshold=3)
    first = reserve(client, "pq", 2).get_json()
    assert taken == [True] and first["status"] == "held"
    assert rules.events(app, "product:pq", "inventory_update")[-1]["available_quantity"] == 8
    alert = rules.events(app, "admin", "inventory_alert")[-1]
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

    rules._age(app, first["reservation_id"])  # 2 units free once reclaimed, 2 now
    assert rules.available(client, "pq") == 4
    assert reserve(client, "pq", 4, who="c4").status_code == 201
    assert taken[-1] is False  # only the locked path reclaims
    assert reserve(client, "pq", 1, who="c5").status_code == 409
    assert rules.events(app, "product:pq", "out_of_stock")[-1]["available_quantity"] == 0
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
    assert rules.available(client, "pl") == 3
    one = reserve(client, "pl", 1, who="c2")
    assert one.status_code == 201
    with client.application.extensions["switchboard"].session() as s:
        got = {r.id: r.location for r in s.scalars(select(Reservation)).all()}
    assert got == {held.get_json()["reservation_id"]: "b-shelf",
                   one.get_json()["reservation_id"]: "a-shelf"}
