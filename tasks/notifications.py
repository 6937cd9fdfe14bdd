"""Tasks of the `notifications` queue: each a few lines around an action.

Acked late and retried with exponential backoff and full jitter (SwitchboardTask);
every action here is idempotent, so a redelivered or duplicated task is harmless.
"""
from __future__ import annotations

from actions import notifications_pipeline as pipeline
from actions.chat import channels
from actions.notifications_pipeline import RetryLater
from providers.messaging import PlatformError, sender_for
from tasks import celery_app

STUCK_AFTER_SECONDS = 600.0


@celery_app.task(name="tasks.notifications.dispatch", bind=True, autoretry_for=(Exception,))
def dispatch(self, notification_id: str) -> dict:
    return pipeline.dispatch(self.services.session, [notification_id])


@celery_app.task(name="tasks.notifications.dispatch_batch", bind=True, autoretry_for=(Exception,))
def dispatch_batch(self, notification_ids: list[str], bypass_digest: bool = False) -> dict:
    return pipeline.dispatch(self.services.session, notification_ids, bypass_digest=bypass_digest)


@celery_app.task(name="tasks.notifications.deliver", bind=True, autoretry_for=(RetryLater, Exception))
def deliver(self, notification_id: str, channel: str) -> dict:
    services = self.services
    return pipeline.deliver(services.session, services.settings, notification_id, channel,
                            final=self.request.retries >= self.max_retries)


@celery_app.task(name="tasks.notifications.deliver_many", bind=True, autoretry_for=(RetryLater, Exception))
def deliver_many(self, notification_ids: list[str], channel: str) -> dict:
    """A dispatched batch's notifications on one channel: one task, not one per notification."""
    services = self.services
    return pipeline.deliver_many(services.session, services.settings, notification_ids, channel,
                                 final=self.request.retries >= self.max_retries)


@celery_app.task(name="tasks.notifications.flush_digest", bind=True, autoretry_for=(Exception,))
def flush_digest(self, digest_key: str) -> str | None:
    return pipeline.flush_digest(self.services.session, digest_key)


@celery_app.task(name="tasks.notifications.sweep_stuck", bind=True)
def sweep_stuck(self, older_than_seconds: float = STUCK_AFTER_SECONDS) -> int:
    """Re-enqueue deliveries still queued long after their task should have run (a lost
    message); `deliver` is idempotent, so one that is merely slow is not sent twice."""
    with self.services.session() as session:
        pairs = pipeline.stuck_deliveries(session, older_than_seconds)
    for notification_id, channel in pairs:
        deliver.apply_async(args=(notification_id, channel))
    return len(pairs)



@celery_app.task(name="tasks.notifications.send_platform_message", bind=True, autoretry_for=(RetryLater,))
def send_platform_message(self, message_id: str) -> str:
    """An agent's answer to a LINE or Messenger customer, through the platform's send API:
    `delivered` once accepted; retried while the platform may recover; a refusal for good
    is kept on the message (`metadata.delivery_error`) and shown to the agents."""
    services = self.services
    with services.session() as session:
        found = channels.outbound(session, message_id)
    if found is None:
        return "nothing to send"
    platform, user_id, text = found
    try:
        sender_for(platform, services.settings).send(user_id, text)
    except PlatformError as exc:
        if exc.retryable and self.request.retries < self.max_retries:
            raise RetryLater(str(exc)) from None
        with services.session() as session:
            channels.failed(session, message_id, str(exc))
        return "failed"
    with services.session() as session:
        channels.delivered(session, message_id)
    return "delivered"
