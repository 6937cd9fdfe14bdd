"""Tasks sent in batches: many small messages of one kind become one task.

A hold sends its expiry as an ETA task. At hundreds of holds a second one
Celery message each costs more than the hold itself, so a process gathers
the holds of a short window and sends one task for all of them, due when
the last of them is. Nothing depends on the batch arriving: the beat sweep
expires whatever a lost batch (a process killed inside the window) missed.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


class EtaBatcher:
    """Gathers (item, due) pairs for `window` seconds, then `send(items, eta=latest due)`."""

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
        except Exception:  # noqa: BLE001 - the sweep expires what this batch held
            log.exception("sending %s for %d items failed", self.name, len(items))

    def _run(self) -> None:
        while True:
            self._wakeup.wait()
            # Let the window fill: the first item of a batch waits at most `window`.
            time.sleep(self.window)
            self._wakeup.clear()
            self.flush()
