"""Carrier tracking (PROTOCOL.md section 6): the timer is `orders.next_poll_at`.

The beat sweep (`claim_due`) moves each due order's `next_poll_at` forward by
a lease with a conditional UPDATE and enqueues one poll: two sweeps racing
claim an order once, and a poll lost with its worker is simply due again
when the lease runs out. The poll talks to the carrier outside any
transaction (`poll_target`, then the carrier, then `record_poll`).
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from actions.effects import enqueue
from actions.orders import STOP_TRACKING, TRANSITIONS, OrderError, change_status
from models import Order, utcnow
from models.session import rowcount
from providers.carriers import TrackingResult

POLL_TASK = "tasks.tracking.poll_order"
LEASE_SECONDS = 120


def claim_due(session: Session, limit: int = 200) -> list[str]:
    """Claim the orders whose poll is due and enqueue their polls (after the commit)."""
    now = utcnow()
    rows = session.execute(select(Order.id, Order.next_poll_at).where(
        Order.next_poll_at <= now).order_by(Order.next_poll_at).limit(limit)).all()
    claimed = []
    for order_id, due in rows:
        done = rowcount(session.execute(update(Order).where(Order.id == order_id, Order.next_poll_at == due)
                                        .values(next_poll_at=now + timedelta(seconds=LEASE_SECONDS))))
        if done:
            claimed.append(order_id)
            enqueue(POLL_TASK, order_id, session=session)
    return claimed


def claim(session: Session, order_id: str, due: datetime) -> bool:
    """Claim one poll timed for `due` (the ETA task's path); False if the sweep got it first."""
    return bool(rowcount(session.execute(
        update(Order).where(Order.id == order_id, Order.next_poll_at == due)
        .values(next_poll_at=utcnow() + timedelta(seconds=LEASE_SECONDS)))))


def poll_target(session: Session, order_id: str) -> tuple[str, str, str] | None:
    """(carrier, tracking number, status) of an order still tracked, else None."""
    order = session.get(Order, order_id)
    if order is None or order.next_poll_at is None or not (order.carrier and order.tracking_number):
        return None
    return order.carrier, order.tracking_number, order.status


def _parse_eta(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def apply_result(session: Session, order: Order, result: TrackingResult, source: str) -> bool:
    """Apply what the carrier says when it is a move the lifecycle allows; True if it moved."""
    if result.status is None:
        return False
    moving = result.status != order.status or result.location is not None
    if not moving or result.status not in TRANSITIONS.get(order.status, frozenset()):
        return False
    if result.status == order.status and order.history and \
            order.history[-1].location == result.location:
        return False  # the same report again: nothing new to tell anyone
    try:
        change_status(session, order.id, result.status, location=result.location,
                      estimated_delivery=_parse_eta(result.estimated_delivery),
                      notes=result.notes, source=source, _order=order)
    except OrderError:
        return False
    return True


def record_poll(session: Session, order_id: str, result: TrackingResult | None, *,
                poll_seconds: int, max_days: int, backoff_max: int) -> bool:
    """Store a poll's outcome (locks the order); `result=None` means the carrier failed."""
    order = session.scalars(select(Order).where(Order.id == order_id).with_for_update()
                            .execution_options(populate_existing=True)).one_or_none()
    if order is None or order.next_poll_at is None:
        return False
    now = utcnow()
    moved = False
    if result is None:
        order.poll_failures += 1
        delay = min(backoff_max, poll_seconds * 2 ** min(order.poll_failures, 10))
    else:
        order.poll_failures = 0
        moved = apply_result(session, order, result, "carrier")
        delay = poll_seconds
    started = order.tracking_started_at or now
    if order.status in STOP_TRACKING or now - started >= timedelta(days=max_days):
        order.next_poll_at = None
    else:
        order.next_poll_at = now + timedelta(seconds=delay)
        # Besides the sweep, an ETA task for the next poll: it claims the poll
        # with the same conditional update, so the two never both poll, and a
        # lost ETA task only means the sweep does it.
        enqueue(POLL_TASK, order_id, order.next_poll_at.isoformat(), session=session,
                      eta=order.next_poll_at)
    return moved


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """`X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the raw body>`."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[7:])


def webhook(session: Session, carrier_name: str, tracking_number: str,
            result: TrackingResult) -> dict[str, Any]:
    """A carrier pushed tracking data: apply it to its order (locks the order)."""
    order = session.scalars(select(Order).where(
        Order.carrier == carrier_name, Order.tracking_number == tracking_number)
        .with_for_update()).first()
    if order is None:
        raise OrderError(404, "not_found", f"no order with {carrier_name} {tracking_number}")
    moved = apply_result(session, order, result, "webhook")
    return {"order_id": order.id, "status": order.status, "applied": moved}
