"""Reservations (PROTOCOL.md section 7): hold, commit, release, expire.

Each transition is one conditional UPDATE on the reservation
(`WHERE status = 'held' ...`) made under the stock level's row lock, with the
matching change of `stock_levels.held` in the same transaction: a
reservation leaves `held` exactly once, whoever (commit, release, the ETA
task, the beat sweep, a hold reclaiming space) gets there first.

`hold` here is the reference: it runs in the caller's transaction, locks
each level in location order, reclaims its expired holds and takes the first
with room. A caller that serves many holds at once enters the batch
explicitly instead (actions/inventory/batch.py, `hold_together`): the same
choice of location and the same rules in one statement for all the holds
that arrive together, falling back to this path for whatever it cannot
settle. tests/integration/test_inventory_paths_pg.py runs random sequences
through both and compares.

The timer lives in the row (`expires_at`). Nothing waits for it to be
correct: availability counts only unexpired holds, and a hold that finds no
room reclaims the expired ones first. The ETA task and the beat sweep only
make the stock come back *visibly* (broadcast) within seconds, even when the
process that made the hold died.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from actions.effects import EtaBatcher, enqueue
from actions.inventory.stock import (HELD, InventoryError, LevelKey, level_available, lock_level,
                                     reclaim_expired, record_change, variant_available)
from broadcast import publish
from models import Product, Reservation, StockLevel, after_commit, new_id, utcnow
from models.session import rowcount

EXPIRE_TASK = "tasks.inventory.expire_reservations"
log = logging.getLogger(__name__)


def _send_expiries(reservation_ids: list[str], eta: datetime) -> None:
    # argsrepr: Celery would otherwise format every id for its logs and events.
    enqueue(EXPIRE_TASK, reservation_ids, eta=eta,
            argsrepr=f"[{len(reservation_ids)} reservations]")


expiries = EtaBatcher(_send_expiries, window=0.1, name="reservation-expiry")


def reservation_json(r: Reservation) -> dict[str, Any]:
    return {"reservation_id": r.id, "id": r.id, "product_id": r.product_id,
            "variant_id": r.variant_id or None, "location": r.location, "quantity": r.quantity,
            "customer_id": r.customer_id, "status": r.status,
            "expires_at": r.expires_at.isoformat(), "created_at": r.created_at.isoformat()}


def _existing(session: Session, owner_id: str, key: str) -> Reservation | None:
    return session.scalar(select(Reservation).where(
        Reservation.owner_id == owner_id, Reservation.idempotency_key == key))


def new_hold(product_id: str, variant_id: str | None, quantity: int, owner_id: str,
             customer_id: str | None, ttl_seconds: int, idempotency_key: str | None,
             now: datetime) -> Reservation:
    """A hold not yet taken from any level (its location is chosen when it is)."""
    if quantity <= 0:
        raise InventoryError(400, "validation_error", "quantity must be positive")
    return Reservation(
        id=new_id(), product_id=product_id, variant_id=variant_id or "", location="",
        quantity=quantity, customer_id=customer_id, owner_id=owner_id, status="held",
        idempotency_key=idempotency_key, expires_at=now + timedelta(seconds=ttl_seconds),
        created_at=now, updated_at=now)


def hold(session: Session, *, product_id: str, variant_id: str | None, quantity: int,
         owner_id: str, customer_id: str | None, ttl_seconds: int,
         idempotency_key: str | None = None) -> tuple[Reservation, bool]:
    """Hold `quantity` units in `session`'s transaction; returns (reservation, created).

    Raises InventoryError 409 `out_of_stock` (after broadcasting `out_of_stock`)
    when no location has enough. With `idempotency_key`, the owner's first
    reservation under that key is returned instead of holding again.
    """
    now = utcnow()
    fresh = new_hold(product_id, variant_id, quantity, owner_id, customer_id, ttl_seconds,
                     idempotency_key, now)
    return hold_locked(session, fresh, now)


def out_of_stock(r: Reservation, available: int, now: datetime) -> InventoryError:
    """Announce the refusal (`out_of_stock`); the error to raise."""
    publish(f"product:{r.product_id}", "out_of_stock",
            {"product_id": r.product_id, "variant_id": r.variant_id or None,
             "requested_quantity": r.quantity, "available_quantity": available,
             "timestamp": now.isoformat()})
    return InventoryError(409, "out_of_stock", f"only {available} available, {r.quantity} requested",
                          available_quantity=available)


def hold_locked(session: Session, r: Reservation, now: datetime) -> tuple[Reservation, bool]:
    """The reference path: each level locked in location order, its expired holds reclaimed,
    the first with room taken."""
    if r.idempotency_key:
        found = _existing(session, r.owner_id, r.idempotency_key)
        if found is not None:
            return found, False
    if session.get(Product, r.product_id) is None:
        raise InventoryError(404, "not_found", f"no product {r.product_id}")
    locations = session.scalars(select(StockLevel.location).where(
        StockLevel.product_id == r.product_id, StockLevel.variant_id == r.variant_id)
        .order_by(StockLevel.location)).all()
    # Locations in name order: every transaction locks levels in the same order.
    for location in locations:
        level = lock_level(session, LevelKey(r.product_id, r.variant_id, location))
        if level is None:
            continue
        reclaim_expired(session, level, now)
        previous = level.on_hand - level.held
        taken = rowcount(session.execute(update(StockLevel).where(
            StockLevel.id == level.id, StockLevel.on_hand - StockLevel.held >= r.quantity)
            .values(held=StockLevel.held + r.quantity, updated_at=now)))
        if not taken:
            continue
        r.location = location
        session.add(r)
        try:
            session.flush()
        except IntegrityError:
            # The same key won a race in another transaction: undo this hold
            # entirely (the rollback also drops its queued events) and answer
            # with the first reservation.
            session.rollback()
            found = _existing(session, r.owner_id, r.idempotency_key or "")
            if found is None:
                raise
            return found, False
        session.refresh(level)
        record_change(session, level, "reservation", previous, level.on_hand - level.held,
                      -r.quantity)
        after_commit(session, expiries.add, r.id, r.expires_at)
        return r, True
    available = variant_available(session, r.product_id, r.variant_id, now)
    # Nothing was changed; end the transaction (releasing the locks) before announcing.
    session.rollback()
    if r.idempotency_key:
        # A request with the same key held first, while this one waited for the
        # level's lock: that hold is the answer, not the stock it left.
        found = _existing(session, r.owner_id, r.idempotency_key)
        if found is not None:
            return found, False
    raise out_of_stock(r, available, now)


def _locked(session: Session, reservation_id: str) -> tuple[Reservation, StockLevel]:
    """The reservation and its stock level, the level locked first (the one lock order)."""
    found = session.get(Reservation, reservation_id)
    if found is None:
        raise InventoryError(404, "not_found", f"no reservation {reservation_id}")
    level = lock_level(session, LevelKey(found.product_id, found.variant_id, found.location))
    assert level is not None, "a reservation's stock level is never deleted"
    session.refresh(found)
    return found, level


def _transition(session: Session, r: Reservation, level: StockLevel, to: str, now: datetime,
                *, unexpired: bool, sold: bool) -> bool:
    conds = [Reservation.id == r.id, Reservation.status == "held"]
    if unexpired:
        conds.append(Reservation.expires_at > now)
    if not rowcount(session.execute(update(Reservation).where(*conds)
                           .values(status=to, updated_at=now))):
        return False
    on_hand = StockLevel.on_hand - r.quantity if sold else StockLevel.on_hand
    session.execute(update(StockLevel).where(StockLevel.id == level.id)
                    .values(held=StockLevel.held - r.quantity, on_hand=on_hand, updated_at=now))
    session.refresh(level)
    session.refresh(r)
    return True


def can_act(r: Reservation, user_id: str, role: str) -> bool:
    return role in ("service", "admin") or user_id in (r.owner_id, r.customer_id)


def commit(session: Session, reservation_id: str) -> Reservation:
    """The hold becomes a sale (on hand and held both drop). 409 once expired or released."""
    r, level = _locked(session, reservation_id)
    if r.status == "committed":
        return r  # a retried commit is not an error
    now = utcnow()
    previous = level_available(session, level, now)
    if not _transition(session, r, level, "committed", now, unexpired=True, sold=True):
        state = "expired" if r.status in ("held", "expired") else r.status
        raise InventoryError(409, f"reservation_{state}", f"the reservation is {state}")
    # Available does not move (the units were already spoken for); viewers and
    # admins still see the sale.
    record_change(session, level, "sale", previous, level_available(session, level, now),
                  -r.quantity)
    return r


def release(session: Session, reservation_id: str) -> Reservation:
    """Give the units back. 409 once committed; releasing twice (or after expiry) is a no-op."""
    r, level = _locked(session, reservation_id)
    if r.status == "committed":
        raise InventoryError(409, "reservation_committed", "the reservation is committed")
    now = utcnow()
    previous = level_available(session, level, now)
    if _transition(session, r, level, "released", now, unexpired=False, sold=False):
        record_change(session, level, "release", previous, level_available(session, level, now),
                      r.quantity)
    return r


def expire(session: Session, reservation_id: str) -> bool:
    """Expire one hold if its time has come (the ETA task and the sweep); idempotent."""
    try:
        r, level = _locked(session, reservation_id)
    except InventoryError:
        return False
    now = utcnow()
    if r.status != "held" or r.expires_at > now:
        return False
    previous = level.on_hand - level.held  # before: what `held` still counts
    units = reclaim_expired(session, level, now)
    if units:
        # `previous` counted the stale holds; what shoppers could buy already
        # ignored them, so announce the corrected figure.
        record_change(session, level, "expiry", previous, level.on_hand - level.held, units)
    return units > 0


def due_for_expiry(session: Session, limit: int = 500) -> list[str]:
    """Ids of holds past their time (the beat sweep's work list)."""
    return list(session.scalars(select(Reservation.id).where(
        HELD, Reservation.expires_at <= utcnow())
        .order_by(Reservation.expires_at).limit(limit)).all())
