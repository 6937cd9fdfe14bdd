"""Celery's settings, built from the process's Settings (tasks.configure applies them).

With REDIS_URL, Redis is the broker and result store, unless CELERY_BROKER_URL names
another broker (RabbitMQ); without either (embedded mode) an in-process broker feeds a
worker thread inside the web process. Celery's Redis transport cannot use a Redis
Cluster: with REDIS_URL naming one, CELERY_BROKER_URL is required and no result
store is kept (no task's result is read).
"""
from __future__ import annotations

from typing import Any

from kombu import Queue

from broadcast.redis_client import is_cluster
from settings import Settings

QUEUES = ("routing", "notifications", "tracking", "inventory")

ROUTES = {
    "tasks.routing.*": {"queue": "routing"},
    "tasks.maintenance.*": {"queue": "routing"},
    "tasks.notifications.*": {"queue": "notifications"},
    "tasks.broadcast.*": {"queue": "notifications"},
    "tasks.tracking.*": {"queue": "tracking"},
    "tasks.inventory.*": {"queue": "inventory"},
}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every periodic task, each with the setting that paces it."""
    return {
        "reap-presence": {"task": "tasks.maintenance.reap_presence", "schedule": 15.0},
        "routing-sweep": {"task": "tasks.routing.sweep",
                          "schedule": settings.routing.sweep_seconds},
        "notifications-sweep-stuck": {"task": "tasks.notifications.sweep_stuck",
                                      "schedule": settings.notifications.stuck_sweep_seconds},
        "poll-due-orders": {"task": "tasks.tracking.poll_due",
                            "schedule": settings.orders.tracking_sweep_seconds},
        "expire-reservations": {"task": "tasks.inventory.expire_due",
                                "schedule": settings.inventory.reservation_sweep_seconds},
    }


def is_amqp(url: str) -> bool:
    return url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def broker_options(broker_url: str, keyprefix: str) -> dict[str, Any]:
    """The transport's options. Redis: ETAs (a 15-minute reservation expiry) must not be
    redelivered early, so the visibility timeout is longer than any countdown we use, and
    keys carry the deployment's prefix. RabbitMQ redelivers only what a dead connection
    held, and a vhost separates deployments."""
    if is_amqp(broker_url) or broker_url.startswith("memory://"):
        return {}
    return {"visibility_timeout": 3600, "global_keyprefix": keyprefix}


def config(settings: Settings) -> dict[str, Any]:
    redis_url = settings.redis_url
    keyprefix = settings.redis_prefix + "celery:"
    if is_cluster(redis_url):
        if not settings.celery_broker_url:
            raise ValueError("REDIS_URL names a Redis Cluster, which Celery cannot use as its broker: "
                             "set CELERY_BROKER_URL (amqp://... or a plain redis://...)")
        redis_url = None
    broker_url = settings.celery_broker_url or redis_url or "memory://"
    return {
        "broker_url": broker_url,
        "result_backend": redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": broker_options(broker_url, keyprefix),
        "result_backend_transport_options": {"global_keyprefix": keyprefix},
        "result_expires": 3600,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "notifications",
        "task_routes": ROUTES,
        # Work that must happen survives a crash: ack after the task ran, give the
        # message back if the worker process died, take one message at a time.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_retry_delay": 5,
        "task_ignore_result": True,
        # Flower and /metrics see every task.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": beat_schedule(settings),
    }
