"""Stock per product, variant and location (PROTOCOL.md section 7): set, adjust, read.

The invariant every writer keeps: `stock_levels.held` is the sum of the
reservations of that level whose status is `held` (expired or not yet).
Available stock is `on_hand - held` plus what those holds have already
outlived, i.e. `on_hand - (unexpired holds)`: a hold past `expires_at` never
counts, whether or not the sweep has processed it (actions/inventory/reservations.py).

Concurrency: every writer takes the stock level's row lock first
(`lock_level`), then touches reservations. One order for every transaction
means no deadlocks; the lock serialises writers of one SKU, and the
conditional updates and the table's CHECKs make an oversell impossible even
if a caller forgot the lock.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from actions.errors import DomainError
from actions.notify import notify
from broadcast import publish
from broadcast.bus import Outgoing
from models import Product, Reservation, StockChange, StockLevel, User, utcnow
from models.session import rowcount

CHANGE_TYPES = ("sale", "restock", "adjustment")
# Literal, not a bound parameter, so PostgreSQL can use the partial indexes
# over held reservations (migrations/versions/0003) in prepared statements too.
HELD = Reservation.status == literal_column("'held'")
DEFAULT_LOCATION = "default"


class InventoryError(DomainError):
    """A refused change of stock or of a reservation."""


@dataclass(frozen=True)
class LevelKey:
    product_id: str
    variant_id: str = ""
    location: str = DEFAULT_LOCATION


# Units one stock level holds at most (the column is a 32-bit integer).
MAX_UNITS = 10**9

def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def ensure_product(session: Session, product_id: str, low_stock_threshold: int | None = None) -> Product:
    """The product row, created if missing (concurrent creators both succeed)."""
    values: dict[str, Any] = {"id": product_id, "created_at": utcnow()}
    if low_stock_threshold is not None:
        values["low_stock_threshold"] = low_stock_threshold
    session.execute(_insert(session)(Product).values(**values).on_conflict_do_nothing())
    product = session.get(Product, product_id)
    assert product is not None
    if low_stock_threshold is not None and product.low_stock_threshold != low_stock_threshold:
        product.low_stock_threshold = low_stock_threshold
    return product


def lock_level(session: Session, key: LevelKey, create: bool = False) -> StockLevel | None:
    """The stock level row, locked FOR UPDATE (PostgreSQL) until the transaction ends."""
    if create:
        session.execute(_insert(session)(StockLevel).values(
            product_id=key.product_id, variant_id=key.variant_id, location=key.location,
            on_hand=0, held=0, low_stock_alerted=False, updated_at=utcnow(),
        ).on_conflict_do_nothing())
    stmt = (select(StockLevel).where(StockLevel.product_id == key.product_id,
                                     StockLevel.variant_id == key.variant_id,
                                     StockLevel.location == key.location)
            .with_for_update().execution_options(populate_existing=True))
    return session.scalars(stmt).one_or_none()


def stale_holds(session: Session, level: StockLevel, now: datetime) -> int:
    """Units still counted in `level.held` by holds that have outlived `expires_at`."""
    return session.scalar(
        select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.product_id == level.product_id, Reservation.variant_id == level.variant_id,
            Reservation.location == level.location, HELD, Reservation.expires_at <= now)) or 0


def level_available(session: Session, level: StockLevel, now: datetime | None = None) -> int:
    return level.on_hand - level.held + stale_holds(session, level, now or utcnow())


def variant_available(session: Session, product_id: str, variant_id: str,
                      now: datetime | None = None) -> int:
    """Available units of one variant over every location: on hand minus unexpired holds.

    Counted as free units (on hand - held) plus the expired holds `held` still
    counts: those are few, where the unexpired holds of a popular product are many.
    """
    now = now or utcnow()
    stale = (select(func.coalesce(func.sum(Reservation.quantity), 0))
             .where(Reservation.product_id == product_id, Reservation.variant_id == variant_id,
                    HELD, Reservation.expires_at <= now).scalar_subquery())
    free = session.scalar(select(func.coalesce(func.sum(StockLevel.on_hand - StockLevel.held), 0)
                                 + stale).where(StockLevel.product_id == product_id,
                                                StockLevel.variant_id == variant_id)) or 0
    return max(0, free)


def stock_view(session: Session, product_id: str) -> dict[str, Any] | None:
    """GET /products/{id}/stock; None when the product is unknown."""
    if session.get(Product, product_id) is None:
        return None
    variants = session.scalars(select(StockLevel.variant_id).where(
        StockLevel.product_id == product_id).distinct().order_by(StockLevel.variant_id)).all()
    now = utcnow()
    out = []
    for variant_id in variants:
        available = variant_available(session, product_id, variant_id, now)
        out.append({"variant_id": variant_id or None, "available_quantity": available,
                    "is_in_stock": available > 0})
    return {"product_id": product_id, "variants": out}


def stock_table(session: Session, limit: int = 500) -> list[dict[str, Any]]:
    """Every level, for the dashboard: on hand, held by unexpired holds, available, threshold."""
    now = utcnow()
    held = {(p, v, loc): n for p, v, loc, n in session.execute(
        select(Reservation.product_id, Reservation.variant_id, Reservation.location,
               func.sum(Reservation.quantity))
        .where(Reservation.status == "held", Reservation.expires_at > now)
        .group_by(Reservation.product_id, Reservation.variant_id, Reservation.location)).all()}
    rows = session.execute(select(StockLevel, Product.name, Product.low_stock_threshold)
                           .join(Product, Product.id == StockLevel.product_id)
                           .order_by(StockLevel.product_id, StockLevel.variant_id, StockLevel.location)
                           .limit(limit)).all()
    out = []
    for level, name, threshold in rows:
        holding = int(held.get((level.product_id, level.variant_id, level.location), 0))
        out.append({"product_id": level.product_id, "product_name": name, "variant_id": level.variant_id or None,
                    "location": level.location, "on_hand": level.on_hand, "held": holding,
                    "available": level.on_hand - holding, "low_stock_threshold": threshold})
    return out


def record_change(session: Session, level: StockLevel, change_type: str, previous: int,
                  current: int, delta: int) -> None:
    """After any change of one level: audit row, `inventory_update`, `inventory_alert`, low stock.

    Quantities are *available* units (what a shopper can still buy). Events go
    out after the commit; a rolled back change announces nothing.
    """
    now = utcnow()
    session.add(StockChange(product_id=level.product_id, variant_id=level.variant_id,
                            location=level.location, change_type=change_type, delta=delta,
                            previous_quantity=previous, current_quantity=current, created_at=now))
    session.flush()
    available = variant_available(session, level.product_id, level.variant_id, now)
    for e in change_events(level.product_id, level.variant_id, level.location, change_type,
                           previous, current, available, now):
        publish(e.topic, e.event, e.data, session=session)
    _low_stock(session, level, current, now)


def change_events(product_id: str, variant_id: str, location: str, change_type: str,
                  previous: int, current: int, available: int, now: datetime) -> list[Outgoing]:
    """What a change of one level announces: the product's `inventory_update` (available
    everywhere) and the admins' `inventory_alert` (this level, before and after)."""
    variant = variant_id or None
    return [
        Outgoing(f"product:{product_id}", "inventory_update",
                 {"product_id": product_id, "variant_id": variant,
                  "available_quantity": available, "is_in_stock": available > 0}),
        Outgoing("admin", "inventory_alert",
                 {"product_id": product_id, "variant_id": variant, "previous_quantity": previous,
                  "current_quantity": current, "change_type": change_type, "location": location,
                  "timestamp": now.isoformat()})]


def _low_stock(session: Session, level: StockLevel, current: int, now: datetime) -> None:
    """Notify the admins once per crossing: the flag flips under the level's row lock."""
    threshold = session.scalar(select(Product.low_stock_threshold).where(
        Product.id == level.product_id))
    if threshold is None:
        return
    low = current <= threshold
    if low == level.low_stock_alerted:
        return
    level.low_stock_alerted = low
    if not low:
        return
    data = {"product_id": level.product_id, "variant_id": level.variant_id or None,
            "location": level.location, "current_quantity": current, "threshold": threshold,
            "timestamp": now.isoformat(), "alert": "low_stock"}
    # Every admin user (a user row with role admin, created on first sight of
    # an admin token) gets it; with none yet there is no one to tell.
    for admin_id in session.scalars(select(User.id).where(User.role == "admin")).all():
        notify(session, admin_id, "inventory_alert", data)


def reclaim_expired(session: Session, level: StockLevel, now: datetime) -> int:
    """Expire this level's holds past their time (caller holds the level's lock); returns units."""
    rows = session.execute(
        update(Reservation).where(
            Reservation.product_id == level.product_id, Reservation.variant_id == level.variant_id,
            Reservation.location == level.location, HELD, Reservation.expires_at <= now)
        .values(status="expired", updated_at=now)
        .returning(Reservation.quantity)).all()
    units = sum(q for (q,) in rows)
    if units:
        session.execute(update(StockLevel).where(StockLevel.id == level.id)
                        .values(held=StockLevel.held - units, updated_at=now))
        session.refresh(level)
    return units


def set_stock(session: Session, key: LevelKey, quantity: int,
              low_stock_threshold: int | None = None) -> dict[str, Any]:
    """PUT stock: on hand becomes `quantity` (locks the level). 409 below what is held."""
    if quantity < 0:
        raise InventoryError(400, "validation_error", "quantity must not be negative")
    ensure_product(session, key.product_id, low_stock_threshold)
    level = lock_level(session, key, create=True)
    assert level is not None
    now = utcnow()
    previous = level_available(session, level, now)
    reclaim_expired(session, level, now)
    if quantity < level.held:
        raise InventoryError(409, "stock_held",
                             f"{level.held} units are held by reservations; on hand cannot go below",
                             held=level.held)
    delta = quantity - level.on_hand
    session.execute(update(StockLevel).where(StockLevel.id == level.id)
                    .values(on_hand=quantity, updated_at=now))
    session.refresh(level)
    current = level.on_hand - level.held
    record_change(session, level, "adjustment" if delta <= 0 else "restock", previous, current, delta)
    return {"product_id": key.product_id, "variant_id": key.variant_id or None,
            "location": key.location, "on_hand": level.on_hand, "held": level.held,
            "available_quantity": current}


def adjust_stock(session: Session, key: LevelKey, delta: int, change_type: str) -> dict[str, Any]:
    """POST adjust: on hand += delta (locks the level); never below the units held."""
    if change_type not in CHANGE_TYPES:
        raise InventoryError(400, "validation_error", f"change_type must be one of {CHANGE_TYPES}")
    if session.get(Product, key.product_id) is None:
        raise InventoryError(404, "not_found", f"no product {key.product_id}")
    level = lock_level(session, key, create=delta > 0)
    if level is None:
        raise InventoryError(409, "insufficient_stock", "no stock at that location")
    now = utcnow()
    previous = level_available(session, level, now)
    reclaim_expired(session, level, now)
    # Conditional: a decrease may take only units nobody holds, an increase may
    # not pass MAX_UNITS (both written so that no sum can overflow the column).
    done = rowcount(session.execute(update(StockLevel).where(
        StockLevel.id == level.id, StockLevel.on_hand - StockLevel.held >= -delta,
        StockLevel.on_hand <= MAX_UNITS - delta)
        .values(on_hand=StockLevel.on_hand + delta, updated_at=now)))
    if not done:
        if level.on_hand + delta > MAX_UNITS:
            raise InventoryError(409, "stock_limit", f"a stock level holds at most {MAX_UNITS} units")
        raise InventoryError(409, "insufficient_stock",
                             f"only {level.on_hand - level.held} units are free to take",
                             available_quantity=level.on_hand - level.held)
    session.refresh(level)
    current = level.on_hand - level.held
    record_change(session, level, change_type, previous, current, delta)
    return {"product_id": key.product_id, "variant_id": key.variant_id or None,
            "location": key.location, "on_hand": level.on_hand, "held": level.held,
            "available_quantity": current}
