"""The domain's work for later: tasks enqueued by name, through a sender the wiring registers.

Domain code says which task should run with which arguments; how a task is
sent (Celery, on the broker the settings name) is the wiring's business:
services.py registers the sender at start, as it registers the bus
(`broadcast.use_bus`). So nothing in actions/ imports Celery or tasks/, and
a test of the domain can register a list instead. Given a session, the task
is sent once the session commits, never if it rolls back (models/session.py).

`EtaBatcher` sends many small tasks of one kind as one: a hold's expiry is an
ETA task, and at hundreds of holds a second one Celery message each cost
more than the hold itself.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.session import after_commit

log = logging.getLogger(__name__)

# (task name, args, options such as eta, countdown, argsrepr) -> None
Sender = Callable[[str, tuple, dict], None]

_sender: Sender | None = None


def use_sender(sender: Sender | None) -> None:
    """Set this process's task sender (the wiring, test fixtures)."""
    global _sender
    _sender = sender


def enqueue(name: str, *args: Any, session: Session | None = None, **options: Any) -> None:
    """Send the task `name` now, or once `session` commits (never if it rolls back)."""
    if session is not None:
        after_commit(session, _send, name, args, options)
    else:
        _send(name, args, options)


def _send(name: str, args: tuple, options: dict) -> None:
    if _sender is None:
        raise RuntimeError("no task sender yet: the wiring registers one (services.Services.build)")
    _sender(name, args, options)


class EtaBatcher:
    """Gathers (item, due) pairs for `window` seconds, then `send(items, eta=latest due)`.

    Nothing may depend on a batch arriving: a process killed inside the
    window loses it, and a periodic sweep must do what it would have done.
    """

    def __init__(self, send: Callable[..., Any], window: float = 0.1, max_items: int = 500,
                 name: str = "eta-batcher") -> None:
        self.send, self.window, self.max_items, self.name = send, window, max_items, name
        self._items: list[Any] = []
        self._due: datetime | None = None
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, item: Any, due: datetime) -> None:
        with self._lock:
            self._items.append(item)
            self._due = due if self._due is None or due > self._due else self._due
            full = len(self._items) >= self.max_items
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        if full:
            self.flush()
        else:
            self._wakeup.set()

    def flush(self) -> None:
        with self._lock:
            items, due = self._items, self._due
            self._items, self._due = [], None
        if not items:
            return
        try:
            self.send(items, eta=due)
        except Exception:  # noqa: BLE001 - the sweep does what this batch would have
            log.exception("sending %s for %d items failed", self.name, len(items))

    def _run(self) -> None:
        while True:
            self._wakeup.wait()
            # Let the window fill: the first item of a batch waits at most `window`.
            time.sleep(self.window)
            self._wakeup.clear()
            self.flush()
