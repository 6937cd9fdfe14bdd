"""The Celery app, the task base class and the domain's task sender.

Tasks are thin: a few lines around an action, taking ids. Domain code
enqueues them by name through actions/effects.py, whose sender (`send`) the
wiring registers; enqueued inside a transaction, a task is sent only after
the commit. The app is configured from the process's Settings by the wiring
(`configure`): app.py in a web process, worker.py in a Celery process.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.beat import EmbeddedService

import celeryconfig
from settings import Settings
from tasks import metrics

log = logging.getLogger(__name__)

_services: Callable[[], Any] | None = None


def use_services(provider: Callable[[], Any] | None) -> None:
    """How a task finds this process's parts (services.Services): the wiring registers it."""
    global _services
    _services = provider


class SwitchboardTask(Task):
    """Acked late (celeryconfig), retried with exponential backoff and jitter."""

    abstract = True
    retry_backoff = True
    retry_backoff_max = 600
    retry_jitter = True
    max_retries = 8

    @property
    def services(self):
        if _services is None:
            raise RuntimeError("no services: the wiring registers them (services.Services.build)")
        return _services()


# The task modules, one per queue, each registering its tasks on `celery_app`: a
# worker imports them as it starts.
TASK_MODULES = ["tasks.broadcast", "tasks.maintenance", "tasks.routing", "tasks.notifications",
                "tasks.tracking", "tasks.inventory"]

celery_app = Celery("switchboard", task_cls=SwitchboardTask, include=TASK_MODULES)


def configure(settings: Settings) -> None:
    """Celery's settings from the process's Settings (broker, queues, routes, beat)."""
    celery_app.conf.update(celeryconfig.config(settings))
    metrics.use_store(settings.redis_url, settings.redis_prefix)


def send(name: str, args: tuple, options: dict) -> None:
    """Send a task by its name (actions/effects.py's sender); routed by celeryconfig."""
    # By name, Celery cannot see the task's ignore_result and would subscribe
    # to a result that never comes, one more channel per task sent, for good.
    celery_app.send_task(name, args=args, **{"ignore_result": True, **options})


def broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:  # noqa: BLE001
        return False


_embedded: dict[str, Any] = {}


def workers_by_queue() -> dict[str, list[str]]:
    result: dict[str, list[str]] = {q: [] for q in celeryconfig.QUEUES}
    if "worker" in _embedded:
        for q in celeryconfig.QUEUES:
            result[q].append("embedded@" + _embedded["worker"].hostname)
        return result
    try:
        replies = celery_app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:  # noqa: BLE001
        return result
    for worker, queues in replies.items():
        for q in queues:
            result.setdefault(q["name"], []).append(worker)
    return result


def start_embedded_worker() -> None:
    """Embedded mode: a Celery worker (and beat) on a thread of this process.

    The in-memory broker lives in this process, so the web side and the
    worker share it; countdowns and ETAs are honoured by the worker's timer,
    as they would be in the distributed mode (no eager shortcut).
    """
    if "worker" in _embedded:
        return
    worker = celery_app.WorkController(
        pool_cls="solo", concurrency=1, queues=list(celeryconfig.QUEUES),
        without_heartbeat=True, without_mingle=True, without_gossip=True,
        hostname="embedded@localhost", loglevel="WARNING")
    _embedded["worker"] = worker
    # The solo pool runs each task through `current_app`, which is per thread:
    # on a thread of our own it would be Celery's default app, whose copies of
    # our tasks lack SwitchboardTask.
    celery_app.set_default()
    threading.Thread(target=worker.start, name="celery-embedded", daemon=True).start()
    # Beat on a thread too: the worker's own `beat=True` forks a process, and
    # a forked child cannot share this process's in-memory broker.
    beat = EmbeddedService(celery_app, thread=True, scheduler_cls="celery.beat:Scheduler")
    _embedded["beat"] = beat
    beat.start()
