"""Celery settings (a plain module; tasks/__init__.py loads it).

With REDIS_URL, Redis is the broker and result store; without it (embedded
mode) an in-process broker feeds a worker thread inside the web process.
"""
import os

from kombu import Queue

QUEUES = ("routing", "notifications", "tracking", "inventory")

_redis = os.environ.get("REDIS_URL") or None
_prefix = os.environ.get("REDIS_PREFIX", "sb:")

broker_url = _redis or "memory://"
result_backend = _redis
broker_connection_retry_on_startup = True
# ETAs (a 15-minute reservation expiry) must not be redelivered early:
# the visibility timeout is longer than any countdown we use.
broker_transport_options = {"visibility_timeout": 3600, "global_keyprefix": _prefix + "celery:"}
result_backend_transport_options = {"global_keyprefix": _prefix + "celery:"}
result_expires = 3600

task_queues = [Queue(name) for name in QUEUES]
task_default_queue = "notifications"
task_routes = {
    "tasks.routing.*": {"queue": "routing"},
    "tasks.maintenance.*": {"queue": "routing"},
    "tasks.notifications.*": {"queue": "notifications"},
    "tasks.broadcast.*": {"queue": "notifications"},
    "tasks.tracking.*": {"queue": "tracking"},
    "tasks.inventory.*": {"queue": "inventory"},
}

# Work that must happen survives a crash: ack after the task ran, give the
# message back if the worker process died, take one message at a time.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_default_retry_delay = 5
task_ignore_result = True

# Flower and /metrics see every task.
worker_send_task_events = True
task_send_sent_event = True

timezone = "UTC"
enable_utc = True

beat_schedule = {
    "reap-presence": {"task": "tasks.maintenance.reap_presence", "schedule": 15.0},
}
