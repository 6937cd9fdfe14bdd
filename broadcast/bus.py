"""The bus: publish / history / live delivery, one interface, two engines.

`RedisBus` (broadcast/redis_bus.py) keeps each topic in a capped Redis stream
and publishes every event on a pub/sub channel; `MemoryBus` here does the same
inside one process for the embedded mode. Both pass tests/integration/test_bus_contract.py.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from broadcast.events import Event, make_cursor, new_epoch, parse_cursor, recoverable

Listener = Callable[[Event], None]


@dataclass(frozen=True)
class Outgoing:
    """One event to publish (`Bus.publish_many`)."""
    topic: str
    event: str
    data: Any
    ephemeral: bool = False
    idempotency_key: str | None = None


class Bus(Protocol):
    def publish(self, topic: str, event: str, data: Any, *, ephemeral: bool = False,
                idempotency_key: str | None = None) -> str | None:
        """Store (unless ephemeral) and deliver; returns the event's cursor."""

    def publish_many(self, events: list[Outgoing]) -> list[str | None]:
        """Publish several events, in order, as one call to the engine; their cursors."""

    def latest(self, topic: str) -> str:
        """Cursor of the newest stored event, or "0-0:<epoch>" on a topic without any."""

    def history(self, topic: str, since: str, limit: int | None = None) -> tuple[list[Event], bool]:
        """Stored events after `since`, oldest first (at most `limit`), and whether `since` is
        still inside the topic's kept history.

        False (with no events) means events after `since` were trimmed, or
        `since` belongs to an epoch whose history is gone: the caller must not
        replay a partial history. With `limit`, a full page means there may be
        more: ask again from the last event's id.
        """

    def attach(self, listener: Listener) -> None:
        """Deliver live events of listened topics to `listener` (the hub).

        `listener(event)` for one event, `listener.many(events)` (if it has it)
        for several, and `listener.reset(topic, cursor)` when the engine finds
        that a listened topic's history was lost while it was not listening
        (Redis restarted): live delivery goes on from `cursor`.
        """

    def listen(self, topic: str) -> None:
        """Start live delivery of `topic`; returns once it is active."""

    def unlisten(self, topic: str) -> None: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Topic:
    events: deque[tuple[Event, int]] = field(default_factory=deque)
    last: tuple[int, int] = (0, 0)
    max_deleted: tuple[int, int] = (0, 0)


class MemoryBus:
    """The embedded engine: history in memory, live delivery by direct call.

    The history lives as long as the process, so the process is its epoch: a
    cursor from before a restart is never recovered.
    """

    def __init__(self, min_events: int = 1000, min_seconds: int = 600) -> None:
        self.min_events = min_events
        self.min_ms = min_seconds * 1000
        self.epoch = new_epoch()
        self._topics: dict[str, _Topic] = {}
        self._idem: dict[tuple[str, str], tuple[str, float]] = {}
        self._listeners: list[Listener] = []
        # One lock orders id assignment and delivery, so listeners see each
        # topic's events in cursor order even with publishers on many threads.
        self._lock = threading.RLock()

    def publish(self, topic: str, event: str, data: Any, *, ephemeral: bool = False,
                idempotency_key: str | None = None) -> str | None:
        with self._lock:
            now = now_ms()
            if idempotency_key:
                first = self._idem.get((topic, idempotency_key))
                if first and first[1] > time.monotonic():
                    return first[0]
            if ephemeral:
                ev = Event.build(topic, event, None, now, data)
            else:
                t = self._topics.setdefault(topic, _Topic())
                ms, seq = t.last
                key = (now, 0) if now > ms else (ms, seq + 1)
                t.last = key
                cursor = make_cursor(f"{key[0]}-{key[1]}", self.epoch)
                ev = Event.build(topic, event, cursor, now, data)
                t.events.append((ev, now))
                self._trim(t, now)
                if idempotency_key:
                    self._idem[topic, idempotency_key] = (cursor, time.monotonic() + 300)
            for listener in self._listeners:
                listener(ev)
            return ev.id

    def publish_many(self, events: list[Outgoing]) -> list[str | None]:
        return [self.publish(e.topic, e.event, e.data, ephemeral=e.ephemeral,
                             idempotency_key=e.idempotency_key) for e in events]

    def _trim(self, t: _Topic, now: int) -> None:
        while len(t.events) > self.min_events and t.events[0][1] <= now - self.min_ms:
            old, _ = t.events.popleft()
            assert old.key is not None   # a stored event has an id
            t.max_deleted = old.key

    def latest(self, topic: str) -> str:
        t = self._topics.get(topic)
        last = t.last if t else (0, 0)
        return make_cursor(f"{last[0]}-{last[1]}", self.epoch)

    def history(self, topic: str, since: str, limit: int | None = None) -> tuple[list[Event], bool]:
        since_key, _ = parse_cursor(since)
        with self._lock:
            t = self._topics.get(topic) or _Topic()
            if not recoverable(since, self.epoch, t.max_deleted):
                return [], False
            # Events are in key order: skip to the first one after `since`.
            events = t.events
            lo, hi = 0, len(events)
            while lo < hi:
                mid = (lo + hi) // 2
                key = events[mid][0].key
                assert key is not None   # a stored event has an id
                if key <= since_key:
                    lo = mid + 1
                else:
                    hi = mid
            end = len(events) if limit is None else min(len(events), lo + limit)
            return [events[i][0] for i in range(lo, end)], True

    def attach(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def listen(self, topic: str) -> None:
        pass  # every event reaches the listeners; the hub ignores topics nobody wants

    def unlisten(self, topic: str) -> None:
        pass

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        self._listeners.clear()
