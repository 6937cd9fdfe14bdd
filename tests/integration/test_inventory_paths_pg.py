"""Holds through the batch and through the locked path agree (PostgreSQL): random
sequences, the same end.

`batch.hold_together` takes holds in one statement for the holds that arrive
together and leaves to the locked path (`reservations.hold`, the reference)
what it cannot settle. Each random sequence here (holds of random quantities,
owners and Idempotency-Keys over two locations, commits, releases, holds
aged past their time, expiries, restocks and sales) runs twice from the same
start: once with every hold through `hold_together`, once through the locked
path. The answers, the rows (levels, reservations, the audit of changes, the
low-stock notifications) and the events published must be the same, once ids
and times are set aside.
"""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from actions.inventory import batch, reservations, stock
from actions.inventory.stock import InventoryError, LevelKey
from models import Notification, Reservation, StockChange, StockLevel, User, utcnow
from settings import Settings
from tests.support.databases import fresh_pg_database


@pytest.fixture(scope="module")
def services():
    from app import create_app
    with fresh_pg_database("sb_holdpaths") as url:
        app = create_app(Settings.of(database_url=url, redis_url=None), background=False)
        services = app.extensions["switchboard"]
        with services.session() as s:
            s.add(User(id="holdpaths-admin", role="admin"))
        yield services


INDEX = st.integers(min_value=0, max_value=3)
HOLD = st.tuples(st.just("hold"), st.integers(min_value=1, max_value=4),
                 st.sampled_from(["o1", "o2"]), st.sampled_from([None, None, "k1", "k2"]))
OPS = st.one_of(
    HOLD, HOLD, HOLD,
    st.tuples(st.just("commit"), INDEX), st.tuples(st.just("release"), INDEX),
    st.tuples(st.just("age"), INDEX), st.tuples(st.just("expire"), INDEX),
    st.tuples(st.just("restock"), st.sampled_from(["a", "b"]), st.integers(1, 4)),
    st.tuples(st.just("sell"), st.sampled_from(["a", "b"]), st.integers(1, 3)),
)


class World:
    """One copy of the start: a product with stock at two locations and a low-stock threshold."""

    def __init__(self, services, start: tuple[int, int], threshold: int | None) -> None:
        self.services = services
        self.tag = f"h{uuid.uuid4().hex[:10]}"
        self.pid = f"{self.tag}-p"
        self.made: list[str] = []   # reservation ids in the order they were first answered
        with services.session() as s:
            for location, quantity in zip(("a", "b"), start, strict=True):
                stock.set_stock(s, LevelKey(self.pid, "", location), quantity,
                                low_stock_threshold=threshold)

    def ordinal(self, rid: str) -> int:
        if rid not in self.made:
            self.made.append(rid)
        return self.made.index(rid)

    def nth(self, i: int) -> str | None:
        return self.made[i % len(self.made)] if self.made else None


def run(world: World, ops: list[tuple], together: bool) -> list:
    services, answers = world.services, []
    for op in ops:
        kind = op[0]
        try:
            if kind == "hold":
                _, quantity, owner, key = op
                hold = dict(product_id=world.pid, variant_id=None, quantity=quantity,
                            owner_id=owner, customer_id=owner, ttl_seconds=600,
                            idempotency_key=key and f"{world.tag}-{key}")
                if together:
                    r, created = batch.hold_together(services, **hold)
                else:
                    with services.session() as s:
                        r, created = reservations.hold(s, **hold)
                answers.append(("held", created, world.ordinal(r.id), r.location))
                continue
            if kind in ("restock", "sell"):
                _, location, n = op
                with services.session() as s:
                    stock.adjust_stock(s, LevelKey(world.pid, "", location), n if kind == "restock" else -n,
                                       "restock" if kind == "restock" else "sale")
                answers.append((kind,))
                continue
            rid = world.nth(op[1])
            if rid is None:
                answers.append(("nothing",))
                continue
            with services.session() as s:
                if kind == "commit":
                    answers.append((kind, reservations.commit(s, rid).status))
                elif kind == "release":
                    answers.append((kind, reservations.release(s, rid).status))
                elif kind == "expire":
                    answers.append((kind, reservations.expire(s, rid)))
                else:   # past its time, not yet expired by anything
                    s.execute(update(Reservation).where(Reservation.id == rid, Reservation.status == "held")
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
                    answers.append((kind,))
        except InventoryError as exc:
            answers.append(("refused", exc.status, exc.code, (exc.details or {}).get("available_quantity")))
    return answers


def _normal(world: World, data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _normal(world, v) for k, v in data.items() if k not in ("timestamp",)}
    if isinstance(data, str):
        return data.replace(world.tag, "W")
    return data


def state(world: World) -> tuple:
    now = utcnow()
    with world.services.session() as s:
        levels = {lv.location: (lv.on_hand, lv.held, lv.low_stock_alerted)
                  for lv in s.scalars(select(StockLevel).where(StockLevel.product_id == world.pid))}
        holds = sorted((world.ordinal(r.id), r.status, r.expires_at <= now, r.quantity, r.location)
                       for r in s.scalars(select(Reservation).where(Reservation.product_id == world.pid)))
        changes = [(c.location, c.change_type, c.delta, c.previous_quantity, c.current_quantity)
                   for c in s.scalars(select(StockChange).where(StockChange.product_id == world.pid)
                                      .order_by(StockChange.id))]
        told = [_normal(world, n.data) for n in s.scalars(
            select(Notification).where(Notification.type == "inventory_alert").order_by(Notification.created_at))
            if n.data.get("product_id") == world.pid]
    return levels, holds, changes, told


H = ("hold", 1, "o1", None)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, max_size=16), start=st.tuples(st.integers(0, 8), st.integers(0, 8)),
       threshold=st.sampled_from([None, None, 0, 1, 2]))
# The cases that tell the two paths apart, whatever the random ones find:
# a hold beside an expired one (its level reclaims first), a hold that needs
# the expired units, a crossing of the low-stock threshold, a key twice.
@example(ops=[H, ("age", 0), H], start=(6, 0), threshold=None)
@example(ops=[("hold", 3, "o1", None), ("age", 0), ("hold", 3, "o2", None)], start=(3, 3), threshold=None)
@example(ops=[("hold", 2, "o1", None), ("hold", 2, "o2", None), H], start=(6, 2), threshold=2)
# An expired hold at a level too small even once reclaimed: the locked path reclaims it
# on its way to the next level (found by hypothesis in CI).
@example(ops=[("hold", 1, "o1", None), ("age", 0), ("hold", 2, "o1", None)], start=(1, 2), threshold=None)
@example(ops=[("hold", 2, "o1", "k1"), ("hold", 2, "o1", "k1"), ("release", 0), ("hold", 2, "o1", "k1")],
         start=(4, 0), threshold=None)
def test_both_paths_hold_store_and_publish_the_same(services, ops, start, threshold):
    events: list = []
    services.bus.attach(events.append)
    try:
        ends = []
        for together in (True, False):
            world = World(services, start, threshold)
            events.clear()
            answers = run(world, ops, together)
            published = [(e.topic.replace(world.tag, "W"), e.name, _normal(world, e.data))
                         for e in events if world.tag in e.frame]
            ends.append((answers, state(world), published))
        assert ends[0] == ends[1]
    finally:
        services.bus._listeners.remove(events.append)
