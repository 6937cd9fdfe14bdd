"""Connections read by a request greenlet: Server-Sent Events and long polling.

Events queue here (bounded) and the request's own greenlet writes them out.
One cursor covers every topic of the stream: a map topic -> event id,
base64url-encoded, carried by SSE `id:` lines and `/poll`'s `cursor`.
"""
from __future__ import annotations

import base64
import json
import math
import threading
from collections import deque

from broadcast.events import Event, cursor_key, dumps
from broadcast.hub import Connection, Replay


class BadStreamCursor(ValueError):
    pass


def encode_cursor(positions: dict[str, str]) -> str:
    raw = json.dumps(positions, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        positions = json.loads(raw)
        if not isinstance(positions, dict):
            raise ValueError
        for topic, eid in positions.items():
            if not isinstance(topic, str):
                raise ValueError
            cursor_key(eid)
        return positions
    except ValueError:
        raise BadStreamCursor("not a cursor issued by this server") from None


class QueuedConnection(Connection):
    def __init__(self, user, transport: str, limit: int, expires_at: float = math.inf) -> None:
        super().__init__(user, expires_at)
        self.transport = transport
        self.queue: deque[Event] = deque()
        self.limit = limit
        self.overflowed = False
        self.expired = False
        self.cursors: dict[str, str] = {}
        self.replays: deque[Replay] = deque()
        self.wakeup = threading.Event()

    def expire(self) -> None:
        # The request's greenlet ends the response; what is queued is not sent.
        self.expired = True
        self.queue.clear()
        self.wakeup.set()

    def send_event(self, ev: Event) -> None:
        if self.expired:
            return
        if len(self.queue) >= self.limit:
            # The client reconnects with its last cursor and is replayed from history.
            self.overflowed = True
        else:
            self.queue.append(ev)
        self.wakeup.set()

    def send_replayed(self, events: list[Event]) -> None:
        if events and not self.expired:
            self.queue.extend(events)
            self.wakeup.set()

    def pace(self, replay: Replay) -> None:
        # Stepped by the response's own greenlet, between its writes (`step_replay`).
        self.replays.append(replay)
        self.wakeup.set()

    def step_replay(self) -> None:
        """Queue the next page of the oldest replay still going."""
        if self.replays and not self.replays[0].step():
            self.replays.popleft()

    def take(self) -> list[Event]:
        self.wakeup.clear()
        events = list(self.queue)
        self.queue.clear()
        return events

    def advance(self, ev: Event) -> None:
        """Move the stream cursor past `ev` (or to a reset point)."""
        if ev.id is not None:
            self.cursors[ev.topic] = ev.id
        elif ev.reset_to is not None:
            self.cursors[ev.topic] = ev.data["cursor"]

    def sse_chunk(self, ev: Event) -> str:
        self.advance(ev)
        if ev.id is None and ev.reset_to is None:
            return f"event: {ev.name}\ndata: {ev.frame}\n\n"
        return f"id: {encode_cursor(self.cursors)}\nevent: {ev.name}\ndata: {ev.frame}\n\n"

    def poll_body(self, events: list[Event]) -> str:
        """`{"events", "cursor", "reset"}`: a topic that could not be recovered is named in `reset`."""
        reset: list[str] = []
        for ev in events:
            self.advance(ev)
            if ev.reset_to is not None and ev.topic not in reset:
                reset.append(ev.topic)
        frames = ",".join(ev.frame for ev in events if ev.reset_to is None)
        return ('{"events":[' + frames + '],"cursor":' + dumps(encode_cursor(self.cursors))
                + ',"reset":' + dumps(reset) + "}")
