"""Tasks of the `tracking` queue: each a few lines around an action.

The beat sweep claims the orders whose `next_poll_at` has come and enqueues
one `poll_order` each; a lost poll is due again once its lease runs out.
"""
from __future__ import annotations

from datetime import datetime

from actions.tracking import claim, claim_due, poll_target, record_poll
from providers.carriers import CarrierError, registry
from tasks import celery_app


@celery_app.task(name="tasks.tracking.poll_due", bind=True, acks_late=True)
def poll_due(self) -> int:
    with self.services.session() as session:
        return len(claim_due(session))


@celery_app.task(name="tasks.tracking.poll_order", bind=True, acks_late=True)
def poll_order(self, order_id: str, due: str | None = None) -> bool:
    """Ask the order's carrier, outside any transaction, then record the answer.

    `due` (ISO time) comes with the ETA task: it must first claim that poll,
    which the sweep may already have done.
    """
    services = self.services
    settings = services.settings
    with services.session() as session:
        if due is not None and not claim(session, order_id, datetime.fromisoformat(due)):
            return False
        target = poll_target(session, order_id)
    if target is None:
        return False
    carrier_name, tracking_number, status = target
    carrier = registry(settings).get(carrier_name)
    result = None
    if carrier is not None:
        try:
            result = carrier.track(tracking_number, status)
        except CarrierError:
            result = None  # backoff: record_poll pushes the next poll further out
    with services.session() as session:
        return record_poll(session, order_id, result,
                           poll_seconds=(carrier.poll_seconds if carrier and carrier.poll_seconds
                                         else settings.orders.tracking_poll_seconds),
                           max_days=settings.orders.tracking_max_days,
                           backoff_max=settings.orders.tracking_backoff_max_seconds)
