"""Presence announcements, off the connection path.

Announcing that a user came online looks up their open conversations and
publishes on each topic: a query that a burst of thousands of connects must
not wait for. Changes go on a queue per worker greenlet, chosen by user, so
each user's online/offline stay in order; each worker takes what arrives
within `linger` seconds of the first change (a burst's worth) and announces
it in one transaction: the query's cost is paid per batch, not per connect
(at 300 connects a second it was a quarter of the process's CPU, one query
per connect).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# (session, [(user_id, online)], {user_id: role}) -> None
AnnounceMany = Callable[[Session, list[tuple[str, bool]], dict[str, str]], None]


class Announcer:
    def __init__(self, session_scope: Callable, announce_many: AnnounceMany, workers: int = 2,
                 batch: int = 1000, linger: float = 0.25) -> None:
        self.session_scope = session_scope
        self.announce_many = announce_many
        self.batch = batch
        self.linger = linger
        self.queues: list[queue.Queue] = [queue.Queue() for _ in range(workers)]
        for q in self.queues:
            threading.Thread(target=self._run, args=(q,), name="presence-announcer", daemon=True).start()

    def put(self, user_id: str, online: bool, role: str | None = None) -> None:
        self.queues[hash(user_id) % len(self.queues)].put((user_id, online, role))


    def _run(self, q: queue.Queue) -> None:
        while True:
            items = [q.get()]
            until = time.monotonic() + self.linger
            while len(items) < self.batch:
                try:
                    items.append(q.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            changes = [(user_id, online) for user_id, online, _ in items]
            roles = {user_id: role for user_id, _, role in items if role}
            try:
                with self.session_scope() as session:
                    self.announce_many(session, changes, roles)
            except Exception:  # noqa: BLE001 - one bad change must not lose the others
                log.exception("batched presence announcement failed; retrying one by one")
                for change in changes:
                    try:
                        with self.session_scope() as session:
                            self.announce_many(session, [change], roles)
                    except Exception:  # noqa: BLE001
                        log.exception("presence announcement for %s failed", change[0])
