"""Tasks of the `notifications` queue: each a few lines around an action.

Acked late and retried with exponential backoff and full jitter (SwitchboardTask);
every action here is idempotent, so a redelivered or duplicated task is harmless.
`BEAT_SCHEDULE` here is merged into Celery beat's schedule (tasks/__init__.py).
"""
from __future__ import annotations

from actions.notifications_pipeline import RetryLater
from tasks import celery_app

STUCK_AFTER_SECONDS = 600.0


@celery_app.task(name="tasks.notifications.dispatch", bind=True, autoretry_for=(Exception,))
def dispatch(self, notification_id: str) -> dict:
    from actions.notifications_pipeline import dispatch as run
    return run(self.services.session, [notification_id])


@celery_app.task(name="tasks.notifications.dispatch_batch", bind=True, autoretry_for=(Exception,))
def dispatch_batch(self, notification_ids: list[str], bypass_digest: bool = False) -> dict:
    from actions.notifications_pipeline import dispatch as run
    return run(self.services.session, notification_ids, bypass_digest=bypass_digest)


@celery_app.task(name="tasks.notifications.deliver", bind=True, autoretry_for=(RetryLater, Exception))
def deliver(self, notification_id: str, channel: str) -> dict:
    from actions.notifications_pipeline import deliver as run
    services = self.services
    return run(services.session, services.settings, notification_id, channel,
               final=self.request.retries >= self.max_retries)


@celery_app.task(name="tasks.notifications.flush_digest", bind=True, autoretry_for=(Exception,))
def flush_digest(self, digest_key: str) -> str | None:
    from actions.notifications_pipeline import flush_digest as run
    return run(self.services.session, digest_key)


@celery_app.task(name="tasks.notifications.sweep_stuck", bind=True)
def sweep_stuck(self, older_than_seconds: float = STUCK_AFTER_SECONDS) -> int:
    """Re-enqueue deliveries still queued long after their task should have run (a lost
    message); `deliver` is idempotent, so one that is merely slow is not sent twice."""
    from actions.notifications_pipeline import stuck_deliveries
    with self.services.session() as session:
        pairs = stuck_deliveries(session, older_than_seconds)
    for notification_id, channel in pairs:
        deliver.apply_async(args=(notification_id, channel))
    return len(pairs)


BEAT_SCHEDULE: dict = {
    "notifications-sweep-stuck": {"task": "tasks.notifications.sweep_stuck", "schedule": 300.0},
}
