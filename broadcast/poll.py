"""Long polling: a connection read by its request's greenlet, answered once.

Events queue here (bounded) while the request waits; the answer is
`{"events", "cursor", "reset"}`, where the cursor covers every topic of the
poll (broadcast/events.py, `encode_cursor`). A replay longer than a page
answers with its first page; the next poll reads on from the cursor.
"""
from __future__ import annotations

import math
import threading
from collections import deque

from broadcast.events import Event, advance, dumps, encode_cursor
from broadcast.hub import Connection, Replay


class PollConnection(Connection):
    transport = "poll"

    def __init__(self, user, limit: int, expires_at: float = math.inf) -> None:
        super().__init__(user, expires_at)
        self.queue: deque[Event] = deque()
        self.limit = limit
        self.expired = False
        self.cursors: dict[str, str] = {}
        self.replays: deque[Replay] = deque()
        self.wakeup = threading.Event()

    def expire(self) -> None:
        # The request answers at once; what is queued is not sent.
        self.expired = True
        self.queue.clear()
        self.wakeup.set()

    def send_event(self, ev: Event) -> None:
        # Past the bound the rest waits in history: the next poll reads it from the cursor.
        if not self.expired and len(self.queue) < self.limit:
            self.queue.append(ev)
        self.wakeup.set()

    def send_replayed(self, events: list[Event]) -> None:
        if events and not self.expired:
            self.queue.extend(events)
            self.wakeup.set()

    def pace(self, replay: Replay) -> None:
        # Not read on here: the answer carries the first page, the next poll the rest.
        self.replays.append(replay)
        self.wakeup.set()

    def take(self) -> list[Event]:
        self.wakeup.clear()
        events = list(self.queue)
        self.queue.clear()
        return events

    def body(self, events: list[Event]) -> str:
        """`{"events", "cursor", "reset"}`: a topic that could not be recovered is named in `reset`."""
        reset: list[str] = []
        for ev in events:
            if advance(self.cursors, ev) and ev.reset_to is not None and ev.topic not in reset:
                reset.append(ev.topic)
        frames = ",".join(ev.frame for ev in events if ev.reset_to is None)
        return ('{"events":[' + frames + '],"cursor":' + dumps(encode_cursor(self.cursors))
                + ',"reset":' + dumps(reset) + "}")
