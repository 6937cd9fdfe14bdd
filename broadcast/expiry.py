"""A connection lives no longer than its token (PROTOCOL.md section 2).

One loop per process ends every connection whose token's `exp` has come,
whichever transport holds it; no timer per connection. A refresh moves a
connection's `expires_at` and adds a new entry; the old entry, when it comes
up, finds the connection's deadline later than itself and is dropped. Entries
hold connections weakly: one that closed long before its token ran out is
not kept alive by its deadline.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import weakref
from typing import Protocol

log = logging.getLogger(__name__)


class Expiring(Protocol):
    expires_at: float   # seconds since the epoch, as a JWT's `exp`

    def expire(self) -> None:
        """End the connection: its token ran out."""


class Deadlines:
    def __init__(self, clock=time.time, loop: bool = True) -> None:
        """`loop=False`: no thread; the caller takes `due()` itself (tests)."""
        self._clock = clock
        self._loop = loop
        self._heap: list[tuple[float, int, weakref.ref]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, conn: Expiring) -> None:
        """End `conn` at its `expires_at` (call again after changing it)."""
        with self._lock:
            first = not self._heap or conn.expires_at < self._heap[0][0]
            heapq.heappush(self._heap, (conn.expires_at, next(self._order), weakref.ref(conn)))
            if self._thread is None and self._loop:
                self._thread = threading.Thread(target=self._run, name="token-expiry", daemon=True)
                self._thread.start()
        if first:
            self._wakeup.set()

    def due(self) -> list[Expiring]:
        """Take the connections whose deadline has come (and that still have it)."""
        now = self._clock()
        out = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                at, _, ref = heapq.heappop(self._heap)
                conn = ref()
                if conn is not None and conn.expires_at <= at:   # not refreshed since
                    out.append(conn)
        return out

    def _next_wait(self) -> float | None:
        with self._lock:
            return max(0.0, self._heap[0][0] - self._clock()) if self._heap else None

    def _run(self) -> None:
        while True:
            self._wakeup.wait(self._next_wait())
            self._wakeup.clear()
            for conn in self.due():
                try:
                    conn.expire()
                except Exception:  # noqa: BLE001 - one connection must not stop the others' expiry
                    log.exception("ending an expired connection failed")
