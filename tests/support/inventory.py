"""Inventory over HTTP for tests: set stock, hold, read what is available and what was published."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from broadcast.events import BEFORE_FIRST
from models import Reservation, utcnow
from tests.support.clients import auth


def events(app, topic, name=None):
    got, _ = app.extensions["switchboard"].bus.history(topic, BEFORE_FIRST)
    return [e.data for e in got if name is None or e.name == name]


def set_stock(client, pid, qty, **extra):
    res = client.put(f"/api/v1/products/{pid}/stock", json={"quantity": qty, **extra},
                     headers=auth("store", "service"))
    assert res.status_code == 200, res.get_json()
    return res.get_json()


def reserve(client, pid, qty, who="c1", key=None, role="customer"):
    headers = auth(who, role)
    if key:
        headers["Idempotency-Key"] = key
    return client.post("/api/v1/reservations", json={"product_id": pid, "quantity": qty},
                       headers=headers)


def available(client, pid, variant=None):
    body = client.get(f"/api/v1/products/{pid}/stock", headers=auth("v", "customer")).get_json()
    return {v["variant_id"]: v["available_quantity"] for v in body["variants"]}[variant]


def age(app, rid):
    """Puts the hold's expiry in the past, as if its time had run out (nothing expires it yet)."""
    with app.extensions["switchboard"].session() as s:
        s.execute(update(Reservation).where(Reservation.id == rid)
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
