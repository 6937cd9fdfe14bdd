"""Reservations (PROTOCOL.md section 7): hold, commit, release, expire.

Each transition is one conditional UPDATE on the reservation
(`WHERE status = 'held' ...`) made under the stock level's row lock, with the
matching change of `stock_levels.held` in the same transaction: a
reservation leaves `held` exactly once, whoever (commit, release, the ETA
task, the beat sweep, a hold reclaiming space) gets there first.

On PostgreSQL a hold first goes with the other holds that arrive meanwhile
in this process (`group_commit.py`): one autocommit statement takes
the whole batch (a conditional UPDATE of each level and the INSERTs that go
with it), so a level's row lock lasts as long as PostgreSQL takes to run it,
not a network round trip or a busy process's turn longer, and one commit
serves many holds, of one hot product or of many. Whatever that cannot
settle (no level has room without reclaiming expired holds, a hold that
crosses the low-stock threshold, an Idempotency-Key seen before, SQLite)
takes the locked path below, which is the reference.

The timer lives in the row (`expires_at`). Nothing waits for it to be
correct: availability counts only unexpired holds, and a hold that finds no
room reclaims the expired ones first. The ETA task and the beat sweep only
make the stock come back *visibly* (broadcast) within seconds, even when the
process that made the hold died.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from psycopg.errors import DeadlockDetected
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from actions.effects import EtaBatcher, enqueue
from actions.inventory import (HELD, InventoryError, LevelKey, change_events, level_available,
                               lock_level, reclaim_expired, record_change, variant_available)
from broadcast import publish, publish_many
from broadcast.bus import Outgoing
from group_commit import GroupCommit
from models import Product, Reservation, StockLevel, after_commit, new_id, utcnow

EXPIRE_TASK = "tasks.inventory.expire_reservations"
log = logging.getLogger(__name__)


def _send_expiries(reservation_ids: list[str], eta: datetime) -> None:
    # argsrepr: Celery would otherwise format every id for its logs and events.
    enqueue(EXPIRE_TASK, reservation_ids, eta=eta,
            argsrepr=f"[{len(reservation_ids)} reservations]")


_expiries = EtaBatcher(_send_expiries, window=0.1, name="reservation-expiry")


def reservation_json(r: Reservation) -> dict[str, Any]:
    return {"reservation_id": r.id, "id": r.id, "product_id": r.product_id,
            "variant_id": r.variant_id or None, "location": r.location, "quantity": r.quantity,
            "customer_id": r.customer_id, "status": r.status,
            "expires_at": r.expires_at.isoformat(), "created_at": r.created_at.isoformat()}


def _existing(session: Session, owner_id: str, key: str) -> Reservation | None:
    return session.scalar(select(Reservation).where(
        Reservation.owner_id == owner_id, Reservation.idempotency_key == key))


def hold(session: Session, *, product_id: str, variant_id: str | None, quantity: int,
         owner_id: str, customer_id: str | None, ttl_seconds: int,
         idempotency_key: str | None = None) -> tuple[Reservation, bool]:
    """Hold `quantity` units; returns (reservation, created).

    Raises InventoryError 409 `out_of_stock` (after broadcasting `out_of_stock`)
    when no location has enough. With `idempotency_key`, the owner's first
    reservation under that key is returned instead of holding again.
    """
    if quantity <= 0:
        raise InventoryError(400, "validation_error", "quantity must be positive")
    variant = variant_id or ""
    now = utcnow()
    fresh = Reservation(
        id=new_id(), product_id=product_id, variant_id=variant, location="", quantity=quantity,
        customer_id=customer_id, owner_id=owner_id, status="held", idempotency_key=idempotency_key,
        expires_at=now + timedelta(seconds=ttl_seconds), created_at=now, updated_at=now)
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and not session.in_transaction():
        if _together.submit(bind, fresh):
            return fresh, True
        if not idempotency_key:
            with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                refused = _plainly_refused(conn, fresh, now)
            if refused is not None:
                raise _out_of_stock(fresh, refused, now)
    return _hold_locked(session, fresh, now)


# One statement for a batch of holds (autocommit). For each product variant of
# the batch: lock the first level (by location) with room for its smallest
# hold, take the longest run of its holds that fits, record them and their
# changes, and return the figures each hold's broadcasts need. Levels are
# locked in id order, so two batches never wait for each other in a circle.
# Expired holds still counted in `held` are not reclaimed here (that needs the
# locked path) but are counted as available in what is announced.
_TAKE = text("""
WITH req AS (
  SELECT t.*, sum(t.q) OVER (PARTITION BY t.p, t.v ORDER BY t.n) AS upto,
         min(t.q) OVER (PARTITION BY t.p, t.v) AS least
  FROM jsonb_to_recordset(CAST(:holds AS jsonb))
       AS t(n integer, p text, v text, rid text, q integer, customer text, owner text,
            key text, expires timestamptz, created timestamptz)
  -- An Idempotency-Key seen before is not taken: the locked path answers with its hold.
  WHERE t.key IS NULL OR NOT EXISTS (
    SELECT 1 FROM reservations x WHERE x.owner_id = t.owner AND x.idempotency_key = t.key)
), target AS (
  -- Locked, so its figures are the rows' latest, whatever committed since
  -- this statement's snapshot.
  SELECT s.id, s.product_id AS p, s.variant_id AS v, s.on_hand - s.held AS room,
         s.low_stock_alerted AS alerted
  FROM stock_levels s
  WHERE s.id IN (SELECT (SELECT l.id FROM stock_levels l
                         WHERE l.product_id = w.p AND l.variant_id = w.v
                           AND l.on_hand - l.held >= w.least
                         ORDER BY l.location LIMIT 1)
                 FROM (SELECT DISTINCT p, v, least FROM req) w)
  ORDER BY s.id
  FOR UPDATE
), take AS (
  -- A hold that takes a level down across its low-stock threshold goes the
  -- locked way, which flips the flag and tells the admins once.
  SELECT target.id, max(req.upto) AS units
  FROM target JOIN req ON req.p = target.p AND req.v = target.v AND req.upto <= target.room
   AND (target.alerted OR target.room - req.upto >
        coalesce((SELECT low_stock_threshold FROM products WHERE id = target.p), -1))
  GROUP BY target.id
), lvl AS (
  UPDATE stock_levels s SET held = s.held + take.units, updated_at = :now
  FROM take
  WHERE s.id = take.id AND s.on_hand - s.held >= take.units
  RETURNING s.id, s.product_id AS p, s.variant_id AS v, s.location,
            s.on_hand - s.held + take.units AS free_before, take.units
), taken AS (
  SELECT req.*, lvl.id AS level_id, lvl.location, lvl.free_before - req.upto AS free_after
  FROM req JOIN lvl ON req.p = lvl.p AND req.v = lvl.v AND req.upto <= lvl.units
), stale AS (
  SELECT lvl.id AS level_id,
         coalesce(sum(r.quantity) FILTER (WHERE r.location = lvl.location), 0) AS here,
         coalesce(sum(r.quantity), 0) AS everywhere
  FROM lvl LEFT JOIN reservations r
    ON r.product_id = lvl.p AND r.variant_id = lvl.v AND r.status = 'held'
   AND r.expires_at <= :now
  GROUP BY lvl.id
), others AS (
  SELECT lvl.id AS level_id, coalesce(sum(s.on_hand - s.held), 0) AS free
  FROM lvl LEFT JOIN stock_levels s
    ON s.product_id = lvl.p AND s.variant_id = lvl.v AND s.id <> lvl.id
  GROUP BY lvl.id
), hold AS (
  INSERT INTO reservations (id, product_id, variant_id, location, quantity, customer_id,
                            owner_id, status, idempotency_key, expires_at, created_at, updated_at)
  SELECT rid, p, v, location, q, customer, owner, 'held', key, expires, created, created
  FROM taken
), change AS (
  INSERT INTO stock_changes (product_id, variant_id, location, change_type, delta,
                             previous_quantity, current_quantity, created_at)
  SELECT taken.p, taken.v, taken.location, 'reservation', -taken.q,
         taken.free_after + taken.q + stale.here, taken.free_after + stale.here, :now
  FROM taken JOIN stale USING (level_id) ORDER BY taken.n
)
SELECT taken.rid, taken.location, taken.free_after + stale.here AS level_free,
       taken.free_after + others.free + stale.everywhere AS available
FROM taken JOIN stale USING (level_id) JOIN others USING (level_id) ORDER BY taken.n
""")


def _take_together(bind: Engine, holds: list[Reservation]) -> list[bool]:
    """Settle a batch of holds (any products) in one statement; which were taken.

    Of each product variant, the smallest holds go first, so the run that fits
    is as long as it can be. What is not taken goes its own way (`hold`):
    another location, a reclaim, a threshold crossing, a refusal.
    """
    # A key twice in one batch: all of them go the locked path, which answers with one hold.
    seen = Counter((r.owner_id, r.idempotency_key) for r in holds if r.idempotency_key)
    ordered = sorted((r for r in holds if not r.idempotency_key
                      or seen[r.owner_id, r.idempotency_key] == 1), key=lambda r: r.quantity)
    if not ordered:
        return [False] * len(holds)
    # One JSON parameter: the batch as rows, without an array per column.
    batch = json.dumps([
        {"n": n, "p": r.product_id, "v": r.variant_id, "rid": r.id, "q": r.quantity,
         "customer": r.customer_id, "owner": r.owner_id, "key": r.idempotency_key,
         "expires": r.expires_at.isoformat(), "created": r.created_at.isoformat()}
        for n, r in enumerate(ordered)])
    now = utcnow()
    try:
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            rows = conn.execute(_TAKE, {"holds": batch, "now": now}).all()
    except IntegrityError:
        return [False] * len(holds)  # a key's first hold made meanwhile: the locked path answers
    except OperationalError as e:
        if not isinstance(e.orig, DeadlockDetected):
            raise
        # Only against a transaction that locks levels of several products in
        # another order; nothing was held: each goes its own way.
        return [False] * len(holds)
    taken = {row.rid: row for row in rows}
    events: list[Outgoing] = []
    for r in ordered:
        row = taken.get(r.id)
        if row is None:
            continue
        r.location = row.location
        events += change_events(r.product_id, r.variant_id, r.location, "reservation",
                                row.level_free + r.quantity, row.level_free, row.available, now)
        _expiries.add(r.id, r.expires_at)
    if events:
        try:
            publish_many(events)
        except Exception:  # noqa: BLE001
            # The holds are committed: failing their requests would invite a retry
            # that holds twice. Viewers catch up with the next change.
            log.exception("announcing %d holds failed", len(taken))
    return [r.id in taken for r in holds]


_together: GroupCommit[Reservation, bool] = GroupCommit(_take_together, name="reservation-holds")


def _plainly_refused(conn: Connection, r: Reservation, now: datetime) -> int | None:
    """Available units when no level could take the hold even after reclaiming; else None.

    Read without a lock: a refusal is true as of this statement. None (the
    locked path decides) when a level would have room once its expired holds
    are reclaimed, or the product has no levels (unknown product: 404 there).
    """
    rows = conn.execute(text("""
        SELECT s.on_hand - s.held + coalesce((
          SELECT sum(r.quantity) FROM reservations r
          WHERE r.product_id = s.product_id AND r.variant_id = s.variant_id
            AND r.location = s.location AND r.status = 'held' AND r.expires_at <= :now), 0) AS free
        FROM stock_levels s WHERE s.product_id = :p AND s.variant_id = :v"""),
        {"p": r.product_id, "v": r.variant_id, "now": now}).scalars().all()
    if not rows or max(rows) >= r.quantity:
        return None
    return max(0, sum(rows))


def _out_of_stock(r: Reservation, available: int, now: datetime) -> InventoryError:
    """Announce the refusal (`out_of_stock`); the error to raise."""
    publish(f"product:{r.product_id}", "out_of_stock",
            {"product_id": r.product_id, "variant_id": r.variant_id or None,
             "requested_quantity": r.quantity, "available_quantity": available,
             "timestamp": now.isoformat()})
    return InventoryError(409, "out_of_stock", f"only {available} available, {r.quantity} requested",
                          available_quantity=available)


def _hold_locked(session: Session, r: Reservation, now: datetime) -> tuple[Reservation, bool]:
    """The reference path: each level locked in turn, its expired holds reclaimed, then taken."""
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
        taken = session.execute(update(StockLevel).where(
            StockLevel.id == level.id, StockLevel.on_hand - StockLevel.held >= r.quantity)
            .values(held=StockLevel.held + r.quantity, updated_at=now)).rowcount
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
        after_commit(session, _expiries.add, r.id, r.expires_at)
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
    raise _out_of_stock(r, available, now)


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
        HELD, Reservation.expires_at <= utcnow())
        .order_by(Reservation.expires_at).limit(limit)).all())
