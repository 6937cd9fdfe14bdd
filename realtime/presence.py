"""Presence in one place: who is online, the lease of this process, the announcements, the reaper.

A user is online while at least one WebSocket or SSE connection of theirs is
open in any web process. The store (broadcast/presence.py: Redis, or memory
in the embedded mode) keeps the count per user and per process; this module
is the process's side of it:

- `connect` / `disconnect` count a connection. The store caps the count per
  user across every process (429 past it). Concurrent connects and
  disconnects go to the store together, one round trip per batch
  (group_commit.py): a burst of connects does not pay one each.
- A user's first connection and last disconnection are announced
  (`user:online` / `user:offline`, PROTOCOL.md section 4) by `announce`,
  which the wiring gives (realtime/announcer.py: batched, off the connection
  path).
- `upkeep` renews this process's lease in the store, counts its connections
  again if another process reaped it during a stall, and reaps processes
  whose lease ran out (a crashed process never leaves its users online);
  the wiring runs it every third of the lease (`run_upkeep`), and beat runs
  the reaper too (tasks/maintenance.py) for when no web process is up.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from group_commit import GroupCommit
from refusals import Refusal

log = logging.getLogger(__name__)

Announce = Callable[[str, bool, str | None], None]   # (user_id, online, role)


class Presence:
    def __init__(self, store, announce: Announce, limit: int) -> None:
        self.store = store
        self.announce = announce
        self.limit = limit
        self.open: Counter[str] = Counter()   # this process's connections per user
        self._batches: GroupCommit = GroupCommit(lambda _key, items: store.apply_many(items),
                                                 "presence")

    def connect(self, user_id: str, role: str | None = None) -> None:
        """Count a connection of `user_id`; Refusal 429 when they hold the limit already."""
        held = self._batches.submit("presence", (user_id, self.limit))
        if not held:
            raise Refusal(429, "too_many_connections",
                          f"at most {self.limit} open connections per user",
                          headers={"Retry-After": "5"})
        self.open[user_id] += 1
        if held == 1:
            self._announce(user_id, True, role)

    def disconnect(self, user_id: str, role: str | None = None) -> None:
        self.open[user_id] -= 1
        if self.open[user_id] <= 0:
            del self.open[user_id]
        if self._batches.submit("presence", (user_id, None)) == 0:
            self._announce(user_id, False, role)

    def is_online(self, user_id: str) -> bool:
        return self.store.is_online(user_id)

    def _announce(self, user_id: str, online: bool, role: str | None = None) -> None:
        try:
            self.announce(user_id, online, role)
        except Exception:  # noqa: BLE001 - presence is best effort; the connection goes on
            log.exception("presence announcement for %s failed", user_id)

    def upkeep(self) -> None:
        if self.store.heartbeat():
            # Reaped while alive (or just started): count what is open again.
            for user_id in self.store.restore(dict(self.open)):
                self._announce(user_id, True)
        for user_id in self.store.reap():
            self._announce(user_id, False)

    def run_upkeep(self, interval: float) -> threading.Thread:
        def loop() -> None:
            while True:
                try:
                    self.upkeep()
                except Exception:  # noqa: BLE001 - Redis away: the next round tries again
                    log.exception("presence upkeep failed")
                time.sleep(interval)
        thread = threading.Thread(target=loop, name="presence-upkeep", daemon=True)
        thread.start()
        return thread
