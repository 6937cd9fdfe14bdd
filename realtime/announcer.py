"""Presence announcements, off the connection path.

Announcing that a user came online looks up their open conversations and
role and publishes on each topic: a few queries that a burst of thousands of
connects must not wait for. Changes go on a queue per worker greenlet, chosen
by user, so each user's online/offline stay in order; each worker handles
what has piled up in one transaction.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

AnnounceMany = Callable[[Session, list[tuple[str, bool]]], None]


class Announcer:
    def __init__(self, session_scope: Callable, announce_many: AnnounceMany, workers: int = 2,
                 batch: int = 500) -> None:
        self.session_scope = session_scope
        self.announce_many = announce_many
        self.batch = batch
        self.queues: list[queue.Queue] = [queue.Queue() for _ in range(workers)]
        for q in self.queues:
            threading.Thread(target=self._run, args=(q,), name="presence-announcer", daemon=True).start()

    def put(self, user_id: str, online: bool) -> None:
        self.queues[hash(user_id) % len(self.queues)].put((user_id, online))

    def pending(self) -> int:
        return sum(q.qsize() for q in self.queues)

    def _run(self, q: queue.Queue) -> None:
        while True:
            changes = [q.get()]
            while len(changes) < self.batch:
                try:
                    changes.append(q.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.session_scope() as session:
                    self.announce_many(session, changes)
            except Exception:  # noqa: BLE001 - one bad change must not lose the others
                log.exception("batched presence announcement failed; retrying one by one")
                for change in changes:
                    try:
                        with self.session_scope() as session:
                            self.announce_many(session, [change])
                    except Exception:  # noqa: BLE001
                        log.exception("presence announcement for %s failed", change[0])
