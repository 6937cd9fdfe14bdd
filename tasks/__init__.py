"""The Celery app, the task base class and `enqueue`.

Tasks are thin: a few lines around an action, taking ids. Enqueued inside a
transaction, a task is sent only after the commit (models/session.py).
"""
from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

# `celery -A tasks` puts the project on sys.path only while it loads this
# module; tasks import the rest of the project lazily, later, in forked pool
# processes, so the project root must stay importable.
# (celery removes its own entry afterwards, so this one is added regardless.)
sys.path.append(str(Path(__file__).resolve().parents[1]))

from celery import Celery, Task
from celery.signals import worker_process_init
from sqlalchemy.orm import Session

from models.session import after_commit

log = logging.getLogger(__name__)


class SwitchboardTask(Task):
    """Acked late (celeryconfig), retried with exponential backoff and jitter."""

    abstract = True
    retry_backoff = True
    retry_backoff_max = 600
    retry_jitter = True
    max_retries = 8

    @property
    def services(self):
        from services import get_services
        return get_services()


TASK_MODULES = ["tasks.broadcast", "tasks.maintenance", "tasks.routing", "tasks.notifications",
                "tasks.tracking", "tasks.inventory"]

celery_app = Celery("switchboard", task_cls=SwitchboardTask, include=TASK_MODULES)
celery_app.config_from_object("celeryconfig")

import tasks.metrics  # noqa: E402,F401  (connects the task signals)


@worker_process_init.connect
def _build_services(**_) -> None:
    """Each pool process builds its own parts (database pool, bus) after the fork."""
    from services import get_services   # the wiring imports what tasks call: not at load
    get_services()


@celery_app.on_after_finalize.connect
def _merge_beat_schedules(sender, **_):
    """Each queue's module declares its periodic tasks in BEAT_SCHEDULE."""
    import importlib
    for name in TASK_MODULES:
        module = importlib.import_module(name)
        sender.conf.beat_schedule.update(getattr(module, "BEAT_SCHEDULE", {}))


def enqueue(task: Task, *args: Any, session: Session | None = None, **options: Any) -> None:
    """Send `task` now, or once `session` commits (never if it rolls back)."""
    if session is not None:
        after_commit(session, task.apply_async, args=args, **options)
    else:
        task.apply_async(args=args, **options)


def enqueue_named(name: str, *args: Any, session: Session | None = None, **options: Any) -> None:
    """Send a task by its name (domain code needs no task objects); routed by celeryconfig."""
    # By name, Celery cannot see the task's ignore_result and would subscribe
    # to a result that never comes, one more channel per task sent, for good.
    options.setdefault("ignore_result", True)
    if session is not None:
        after_commit(session, celery_app.send_task, name, args=args, **options)
    else:
        celery_app.send_task(name, args=args, **options)


def broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:  # noqa: BLE001
        return False


_embedded: dict[str, Any] = {}


def workers_by_queue() -> dict[str, list[str]]:
    from celeryconfig import QUEUES
    result: dict[str, list[str]] = {q: [] for q in QUEUES}
    if "worker" in _embedded:
        for q in QUEUES:
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
    from celeryconfig import QUEUES
    if "worker" in _embedded:
        return
    worker = celery_app.WorkController(
        pool_cls="solo", concurrency=1, queues=list(QUEUES),
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
    from celery.beat import EmbeddedService
    beat = EmbeddedService(celery_app, thread=True, scheduler_cls="celery.beat:Scheduler")
    _embedded["beat"] = beat
    beat.start()
