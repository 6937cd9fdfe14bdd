"""Orders and their status lifecycle (PROTOCOL.md section 6).

`change_status` is the one place a status moves, whoever asks (the store's
backend, a carrier poll, a carrier's webhook): it checks the lifecycle under
the order's row lock, writes the history, and after the commit broadcasts on
`order:{id}`, `user:{customer}` and `admin`, notifies the customer and records
an analytics event.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actions.effects import enqueue
from actions.errors import DomainError
from actions.notify import notify
from broadcast import publish
from models import AnalyticsEvent, Order, OrderStatusHistory, utcnow

# Which status may follow which. Repeating a moving status (a new location
# while in transit) is an update, not a transition; anything else is 409.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "processing", "cancelled"}),
    "confirmed": frozenset({"processing", "shipped", "cancelled"}),
    "processing": frozenset({"shipped", "cancelled"}),
    "shipped": frozenset({"shipped", "in_transit", "out_for_delivery", "delivered",
                          "failed_delivery", "returned"}),
    "in_transit": frozenset({"in_transit", "out_for_delivery", "delivered", "failed_delivery",
                             "returned"}),
    "out_for_delivery": frozenset({"out_for_delivery", "in_transit", "delivered",
                                   "failed_delivery"}),
    "failed_delivery": frozenset({"in_transit", "out_for_delivery", "delivered", "returned",
                                  "cancelled"}),
    "delivered": frozenset({"returned"}),
    "cancelled": frozenset(),
    "returned": frozenset(),
}
STOP_TRACKING = frozenset({"delivered", "cancelled", "returned"})


class OrderError(DomainError):
    """A refused order change (an illegal transition, an unknown order)."""


def order_json(order: Order, with_history: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": order.id, "customer_id": order.customer_id, "status": order.status,
        "carrier": order.carrier, "tracking_number": order.tracking_number,
        "estimated_delivery": order.estimated_delivery.isoformat() if order.estimated_delivery else None,
        "created_at": order.created_at.isoformat(), "updated_at": order.updated_at.isoformat(),
        "next_poll_at": order.next_poll_at.isoformat() if order.next_poll_at else None,
    }
    if with_history:
        out["history"] = [{
            "previous_status": h.previous_status, "status": h.status, "location": h.location,
            "notes": h.notes, "tracking_number": h.tracking_number, "source": h.source,
            "estimated_delivery": h.estimated_delivery.isoformat() if h.estimated_delivery else None,
            "timestamp": h.created_at.isoformat()} for h in order.history]
    return out


def list_orders(session: Session, *, customer_id: str | None, status: str | None,
                limit: int) -> list[dict[str, Any]]:
    stmt = select(Order)
    if customer_id is not None:
        stmt = stmt.where(Order.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(Order.status == status)
    found = session.scalars(stmt.order_by(Order.updated_at.desc(), Order.id).limit(limit)).all()
    return [order_json(o, with_history=False) for o in found]


def _lock(session: Session, order_id: str) -> Order | None:
    return session.scalars(select(Order).where(Order.id == order_id).with_for_update()
                           .execution_options(populate_existing=True)).one_or_none()


def _schedule_tracking(session: Session, order: Order, now: datetime) -> None:
    """Start (or stop) the tracking timer kept in the row (actions/tracking.py polls it)."""
    if order.carrier and order.tracking_number and order.status not in STOP_TRACKING:
        if order.tracking_started_at is None:
            order.tracking_started_at = now
        if order.next_poll_at is None:
            order.next_poll_at = now
            # The first poll now; the sweep does it if this is lost.
            enqueue("tasks.tracking.poll_order", order.id, now.isoformat(), session=session)
    else:
        order.next_poll_at = None


def upsert_order(session: Session, order_id: str, *, customer_id: str, status: str,
                 carrier: str | None = None, tracking_number: str | None = None) -> tuple[Order, bool]:
    """PUT /orders/{id}: create, or update carrier data and move the status. Locks the order."""
    now = utcnow()
    order = _lock(session, order_id)
    created = order is None
    if order is None:
        order = Order(id=order_id, customer_id=customer_id, status=status, carrier=carrier,
                      tracking_number=tracking_number, created_at=now, updated_at=now)
        session.add(order)
        session.flush()
        _announce(session, order, None, now, source="api")
    else:
        if order.customer_id != customer_id:
            raise OrderError(409, "customer_mismatch", "the order belongs to another customer")
        if carrier is not None:
            order.carrier = carrier
        if tracking_number is not None:
            order.tracking_number = tracking_number
        if status != order.status:
            change_status(session, order_id, status, source="api", _order=order)
    _schedule_tracking(session, order, now)
    return order, created


def change_status(session: Session, order_id: str, status: str, *, location: dict | None = None,
                  estimated_delivery: datetime | None = None, tracking_number: str | None = None,
                  notes: str | None = None, source: str = "api",
                  _order: Order | None = None) -> Order:
    """Move the order to `status` (locks the order); OrderError 409 if the lifecycle forbids it."""
    order = _order or _lock(session, order_id)
    if order is None:
        raise OrderError(404, "not_found", f"no order {order_id}")
    if status not in TRANSITIONS.get(order.status, frozenset()):
        raise OrderError(409, "illegal_transition",
                         f"an order cannot go from {order.status} to {status}")
    now = utcnow()
    previous = order.status
    order.status = status
    order.updated_at = now
    if estimated_delivery is not None:
        order.estimated_delivery = estimated_delivery
    if tracking_number:
        order.tracking_number = tracking_number
    _announce(session, order, previous, now, source=source, location=location, notes=notes,
              estimated_delivery=estimated_delivery, tracking_number=tracking_number)
    _schedule_tracking(session, order, now)
    return order


def _announce(session: Session, order: Order, previous: str | None, now: datetime, *, source: str,
              location: dict | None = None, notes: str | None = None,
              estimated_delivery: datetime | None = None, tracking_number: str | None = None) -> None:
    session.add(OrderStatusHistory(
        order_id=order.id, previous_status=previous, status=order.status, location=location,
        notes=notes, estimated_delivery=estimated_delivery, tracking_number=tracking_number,
        source=source, created_at=now))
    data: dict[str, Any] = {"order_id": order.id, "customer_id": order.customer_id,
                            "previous_status": previous, "current_status": order.status,
                            "timestamp": now.isoformat()}
    if location is not None:
        data["location"] = location
    if estimated_delivery is not None:
        data["estimated_delivery"] = estimated_delivery.isoformat()
    if tracking_number or order.tracking_number:
        data["tracking_number"] = tracking_number or order.tracking_number
    if notes is not None:
        data["notes"] = notes
    publish(f"order:{order.id}", "order_status_update", data, session=session)
    publish(f"user:{order.customer_id}", "order_status_update", data, session=session)
    publish("admin", "order_tracking_update", {**data, "carrier": order.carrier, "source": source},
            session=session)
    notify(session, order.customer_id, "order_status_update", data)
    session.add(AnalyticsEvent(name="order_status_changed", subject_type="order",
                               subject_id=order.id, user_id=order.customer_id,
                               data={"previous_status": previous, "current_status": order.status,
                                     "source": source}, created_at=now))


def order_stats(session: Session) -> dict[str, Any]:
    """The admin dashboard's delivery figures."""
    by_status = dict(session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
    since = utcnow() - timedelta(hours=24)
    delivered = session.scalars(select(OrderStatusHistory.created_at).where(
        OrderStatusHistory.status == "delivered", OrderStatusHistory.created_at >= since)).all()
    return {"by_status": by_status, "delivered_24h": len(delivered),
            "in_flight": sum(by_status.get(s, 0) for s in
                             ("shipped", "in_transit", "out_for_delivery", "failed_delivery")),
            "tracked": session.scalar(select(func.count()).select_from(Order).where(
                Order.next_poll_at.is_not(None))) or 0}
