"""Reservations (PROTOCOL.md section 7): hold, commit, release, expire.

Each transition is one conditional UPDATE on the reservation
(`WHERE status = 'held' ...`) made under the stock level's row lock, with the
matching change of `stock_levels.held` in the same transaction: a
reservation leaves `held` exactly once, whoever (commit, release, the ETA
task, the beat sweep, a hold reclaiming space) gets there first.

The timer lives in the row (`expires_at`). Nothing waits for it to be
correct: availability and every hold already ignore a hold past its time
(`reclaim_expired` runs before each change of a level). The ETA task and the
beat sweep only make the stock come back *visibly* (broadcast) within
seconds, even when the process that made the hold died.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from actions.inventory import (InventoryError, LevelKey, level_available, lock_level,
                               record_change, variant_available)
from broadcast import publish
from models import Product, Reservation, StockLevel, new_id, utcnow

EXPIRE_TASK = "tasks.inventory.expire_reservation"


def reservation_json(r: Reservation) -> dict[str, Any]:
    return {"reservation_id": r.id, "id": r.id, "product_id": r.product_id,
            "variant_id": r.variant_id or None, "location": r.location, "quantity": r.quantity,
            "customer_id": r.customer_id, "status": r.status,
            "expires_at": r.expires_at.isoformat(), "created_at": r.created_at.isoformat()}


def reclaim_expired(session: Session, level: StockLevel, now: datetime) -> int:
    """Expire this level's holds past their time (caller holds the level's lock); returns units."""
    rows = session.execute(
        update(Reservation).where(
            Reservation.product_id == level.product_id, Reservation.variant_id == level.variant_id,
            Reservation.location == level.location, Reservation.status == "held",
            Reservation.expires_at <= now)
        .values(status="expired", updated_at=now)
        .returning(Reservation.quantity)).all()
    units = sum(q for (q,) in rows)
    if units:
        session.execute(update(StockLevel).where(StockLevel.id == level.id)
                        .values(held=StockLevel.held - units, updated_at=now))
        session.refresh(level)
    return units


def _existing(session: Session, owner_id: str, key: str) -> Reservation | None:
    return session.scalar(select(Reservation).where(
        Reservation.owner_id == owner_id, Reservation.idempotency_key == key))


def hold(session: Session, *, product_id: str, variant_id: str | None, quantity: int,
         owner_id: str, customer_id: str | None, ttl_seconds: int,
         idempotency_key: str | None = None) -> tuple[Reservation, bool]:
    """Hold `quantity` units; returns (reservation, created). Locks the stock levels it tries.

    Raises InventoryError 409 `out_of_stock` (after broadcasting `out_of_stock`)
    when no location has enough. With `idempotency_key`, the owner's first
    reservation under that key is returned instead of holding again.
    """
    if quantity <= 0:
        raise InventoryError(400, "validation_error", "quantity must be positive")
    if idempotency_key:
        found = _existing(session, owner_id, idempotency_key)
        if found is not None:
            return found, False
    if session.get(Product, product_id) is None:
        raise InventoryError(404, "not_found", f"no product {product_id}")
    variant = variant_id or ""
    locations = session.scalars(select(StockLevel.location).where(
        StockLevel.product_id == product_id, StockLevel.variant_id == variant)
        .order_by(StockLevel.location)).all()
    now = utcnow()
    # Locations in name order: every transaction locks levels in the same order.
    for location in locations:
        level = lock_level(session, LevelKey(product_id, variant, location))
        if level is None:
            continue
        reclaim_expired(session, level, now)
        previous = level.on_hand - level.held
        taken = session.execute(update(StockLevel).where(
            StockLevel.id == level.id, StockLevel.on_hand - StockLevel.held >= quantity)
            .values(held=StockLevel.held + quantity, updated_at=now)).rowcount
        if not taken:
            continue
        reservation = Reservation(
            id=new_id(), product_id=product_id, variant_id=variant, location=location,
            quantity=quantity, customer_id=customer_id, owner_id=owner_id, status="held",
            idempotency_key=idempotency_key, expires_at=now + timedelta(seconds=ttl_seconds),
            created_at=now, updated_at=now)
        session.add(reservation)
        try:
            session.flush()
        except IntegrityError:
            # The same key won a race in another transaction: undo this hold
            # entirely (the rollback also drops its queued events) and answer
            # with the first reservation.
            session.rollback()
            found = _existing(session, owner_id, idempotency_key or "")
            if found is None:
                raise
            return found, False
        session.refresh(level)
        record_change(session, level, "reservation", previous, level.on_hand - level.held, -quantity)
        from tasks import enqueue_named
        enqueue_named(EXPIRE_TASK, reservation.id, session=session, eta=reservation.expires_at)
        return reservation, True
    available = variant_available(session, product_id, variant, now)
    # Nothing was changed; end the transaction (releasing the locks) before announcing.
    session.rollback()
    publish(f"product:{product_id}", "out_of_stock",
            {"product_id": product_id, "variant_id": variant or None,
             "requested_quantity": quantity, "available_quantity": available,
             "timestamp": now.isoformat()})
    raise InventoryError(409, "out_of_stock",
                         f"only {available} available, {quantity} requested",
                         available_quantity=available)


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
    if not session.execute(update(Reservation).where(*conds)
                           .values(status=to, updated_at=now)).rowcount:
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
        Reservation.status == "held", Reservation.expires_at <= utcnow())
        .order_by(Reservation.expires_at).limit(limit)).all())
