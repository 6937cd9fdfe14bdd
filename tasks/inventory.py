"""Tasks of the `inventory` queue: each a few lines around an action.

A reservation's expiry is sent as an ETA task when it is made (the holds of a
tenth of a second together, tasks/batching.py); the beat sweep
expires whatever that task missed (a killed worker, a lost message), so the
stock comes back within `reservation_sweep_seconds` of `expires_at` anyway.
`BEAT_SCHEDULE` here is merged into Celery beat's schedule (tasks/__init__.py).
"""
from __future__ import annotations

from settings import Settings
from tasks import celery_app

BEAT_SCHEDULE: dict = {
    "expire-reservations": {"task": "tasks.inventory.expire_due",
                            "schedule": Settings.from_env().reservation_sweep_seconds},
}


@celery_app.task(name="tasks.inventory.expire_reservation", bind=True, acks_late=True,
                 autoretry_for=(Exception,))
def expire_reservation(self, reservation_id: str) -> bool:
    """Idempotent: a reservation already committed, released or expired is left alone."""
    from actions.reservations import expire
    with self.services.session() as session:
        return expire(session, reservation_id)


@celery_app.task(name="tasks.inventory.expire_due", bind=True, acks_late=True)
def expire_due(self) -> int:
    """The sweep: every hold past its time, one transaction each (a failure stays local)."""
    from actions.reservations import due_for_expiry
    with self.services.session() as session:
        ids = due_for_expiry(session)
    return expire_reservations.run(ids)


@celery_app.task(name="tasks.inventory.expire_reservations", bind=True, acks_late=True)
def expire_reservations(self, reservation_ids: list[str]) -> int:
    """A batch of ETA expiries (tasks/batching.py): one transaction each, like the sweep."""
    from actions.reservations import expire
    done = 0
    for reservation_id in reservation_ids:
        with self.services.session() as session:
            done += expire(session, reservation_id)
    return done
