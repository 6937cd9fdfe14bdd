"""Tasks of the `inventory` queue: each a few lines around an action.

A reservation's expiry is sent as an ETA task when it is made (the holds of a
tenth of a second together, actions/effects.py); the beat sweep expires
whatever that task missed (a killed worker, a lost message), so the stock
comes back within `settings.inventory.reservation_sweep_seconds` of
`expires_at` anyway.
"""
from __future__ import annotations

from actions.inventory.reservations import due_for_expiry, expire
from tasks import celery_app


@celery_app.task(name="tasks.inventory.expire_reservation", bind=True, acks_late=True,
                 autoretry_for=(Exception,))
def expire_reservation(self, reservation_id: str) -> bool:
    """Idempotent: a reservation already committed, released or expired is left alone."""
    with self.services.session() as session:
        return expire(session, reservation_id)


@celery_app.task(name="tasks.inventory.expire_due", bind=True, acks_late=True)
def expire_due(self) -> int:
    """The sweep: every hold past its time, one transaction each (a failure stays local)."""
    with self.services.session() as session:
        ids = due_for_expiry(session)
    return expire_reservations.run(ids)


@celery_app.task(name="tasks.inventory.expire_reservations", bind=True, acks_late=True)
def expire_reservations(self, reservation_ids: list[str]) -> int:
    """A batch of ETA expiries (actions/effects.py): one transaction each, like the sweep."""
    done = 0
    for reservation_id in reservation_ids:
        with self.services.session() as session:
            done += expire(session, reservation_id)
    return done
