"""Task counts by queue and state, shared by every process for /metrics.

Workers count in a Redis hash (or in memory in the embedded mode); any web
process's /metrics exposes the totals.
"""
from __future__ import annotations

import threading
from collections import Counter

from celery import signals

from broadcast.redis_client import connect

_local: Counter = Counter()
_lock = threading.Lock()
_store: dict = {"url": None, "client": None, "key": "sb:metrics:tasks"}


def use_store(redis_url: str | None, prefix: str) -> None:
    """Count in Redis at `redis_url` (None: in this process's memory); tasks.configure calls it."""
    if redis_url != _store["url"]:
        _store.update(url=redis_url, client=connect(redis_url, max_connections=8) if redis_url else None)
    _store["key"] = prefix + "metrics:tasks"


def _redis():
    return _store["client"]


def _key() -> str:
    return _store["key"]


def count(queue: str, state: str) -> None:
    field = f"{queue}|{state}"
    client = _redis()
    if client is not None:
        try:
            client.hincrby(_key(), field, 1)
            return
        except Exception:  # noqa: BLE001 - metrics never fail a task
            return
    with _lock:
        _local[field] += 1


def _queue_of(task, request=None) -> str:
    req = request or getattr(task, "request", None)
    info = getattr(req, "delivery_info", None) or {}
    return info.get("routing_key") or info.get("exchange") or "unknown"


@signals.task_prerun.connect
def _started(sender=None, task=None, **_):
    count(_queue_of(task), "started")


@signals.task_success.connect
def _succeeded(sender=None, **_):
    count(_queue_of(sender), "succeeded")


@signals.task_failure.connect
def _failed(sender=None, **_):
    count(_queue_of(sender), "failed")


@signals.task_retry.connect
def _retried(sender=None, request=None, **_):
    count(_queue_of(sender, request), "retried")


def task_counts_text() -> str:
    client = _redis()
    if client is not None:
        try:
            raw = {k.decode(): int(v) for k, v in client.hgetall(_key()).items()}
        except Exception:  # noqa: BLE001
            raw = {}
    else:
        with _lock:
            raw = dict(_local)
    lines = ["# HELP switchboard_tasks_total Celery tasks by queue and state (all workers)",
             "# TYPE switchboard_tasks_total counter"]
    for field, value in sorted(raw.items()):
        queue, state = field.split("|", 1)
        lines.append(f'switchboard_tasks_total{{queue="{queue}",state="{state}"}} {value}')
    return "\n".join(lines) + "\n"
