"""Holds that arrive together in a process, taken in one statement (PostgreSQL).

Every hold of a hot product updates that product's one stock row, and
PostgreSQL keeps a row lock until the commit is flushed: holds one at a time
top out at a few hundred a second (BENCHMARKS.md, issue 5). So the holds
that arrive while a batch is at the database go together as the next one
(group_commit.py): one autocommit statement takes the whole batch (a
conditional UPDATE of each level and the INSERTs that go with it), so a
level's row lock lasts as long as PostgreSQL takes to run it and one commit
serves many holds, of one hot product or of many.

`hold_together` is the entry for a caller that wants this (the HTTP API).
It chooses locations as the locked path does (actions/inventory/reservations.py,
the reference) and leaves to it whatever it cannot settle: a level whose
room is expired holds to reclaim, a hold that crosses the low-stock
threshold, an Idempotency-Key seen before, SQLite.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime

from psycopg.errors import DeadlockDetected
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from actions.database import Database
from actions.inventory.reservations import expiries, hold_locked, new_hold, out_of_stock
from actions.inventory.stock import change_events
from broadcast import publish_many
from broadcast.bus import Outgoing
from group_commit import GroupCommit
from models import Reservation, utcnow

log = logging.getLogger(__name__)


def hold_together(db: Database, *, product_id: str, variant_id: str | None, quantity: int,
                  owner_id: str, customer_id: str | None, ttl_seconds: int,
                  idempotency_key: str | None = None) -> tuple[Reservation, bool]:
    """`reservations.hold`, with the holds arriving meanwhile in this process; (reservation,
    created). What the batch does not take goes the locked way in a transaction of `db`."""
    now = utcnow()
    fresh = new_hold(product_id, variant_id, quantity, owner_id, customer_id, ttl_seconds,
                     idempotency_key, now)
    engine = db.autocommit_engine
    if engine is not None and engine.dialect.name == "postgresql":
        if _together.submit(engine, fresh):
            return fresh, True
        if not idempotency_key:
            with db.autocommit_connection() as conn:
                refused = _plainly_refused(conn, fresh, now)
            if refused is not None:
                raise out_of_stock(fresh, refused, now)
    with db.session() as session:
        return hold_locked(session, fresh, now)


# One statement for a batch of holds (autocommit). For each product variant of
# the batch: lock the level the locked path would choose for its smallest hold
# (the first by location with room once its expired holds are reclaimed),
# take the longest run of its holds that fits, record them and their changes,
# and return the figures each hold's broadcasts need. Reclaiming expired holds
# is the locked path's: when the chosen level or one before it has some, the
# product takes nothing here, and its holds go the locked way, which reclaims
# them at every level it passes and takes from the same level.
# Levels are locked in id order, so two batches never wait for each other in
# a circle.
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
), cand AS (
  -- The level the locked path would choose for the smallest hold: the first by
  -- location with room once its expired holds are reclaimed. `stale_upto`: it,
  -- or a level the locked path passes on its way to it, has expired holds.
  SELECT DISTINCT ON (x.product_id, x.variant_id) x.id, x.stale_upto
  FROM (
    SELECT l.id, l.product_id, l.variant_id, l.location, w.least, l.on_hand - l.held + lv.stale AS room,
           bool_or(lv.stale > 0) OVER (PARTITION BY l.product_id, l.variant_id ORDER BY l.location)
             AS stale_upto
    FROM (SELECT DISTINCT p, v, least FROM req) w
    JOIN stock_levels l ON l.product_id = w.p AND l.variant_id = w.v
    CROSS JOIN LATERAL (
      SELECT coalesce(sum(r.quantity), 0) AS stale FROM reservations r
      WHERE r.product_id = l.product_id AND r.variant_id = l.variant_id
        AND r.location = l.location AND r.status = 'held' AND r.expires_at <= :now) lv
  ) x
  WHERE x.room >= x.least
  ORDER BY x.product_id, x.variant_id, x.location
), target AS (
  -- Locked, so its figures are the rows' latest, whatever committed since
  -- this statement's snapshot. Expired holds are the locked path's to reclaim,
  -- at every level it passes: if any lie on its way, the batch takes nothing
  -- of this product, and its holds go the locked way.
  SELECT s.id, s.product_id AS p, s.variant_id AS v, s.on_hand - s.held AS room,
         s.low_stock_alerted AS alerted
  FROM stock_levels s
  WHERE s.id IN (SELECT id FROM cand WHERE NOT stale_upto)
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


def take_together(bind: Engine, holds: list[Reservation]) -> list[bool]:
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
        expiries.add(r.id, r.expires_at)
    if events:
        try:
            publish_many(events)
        except Exception:  # noqa: BLE001
            # The holds are committed: failing their requests would invite a retry
            # that holds twice. Viewers catch up with the next change.
            log.exception("announcing %d holds failed", len(taken))
    return [r.id in taken for r in holds]


_together: GroupCommit[Reservation, bool, Engine] = GroupCommit(take_together, name="reservation-holds")


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
