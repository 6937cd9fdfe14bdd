"""The per-process hub: local interest per topic, resume without gaps, fan-out.

The bus hands every live event of a listened topic to `Hub.dispatch`; the hub
offers it to each local connection that joined the topic. A connection that
is joining holds live events while its replay is read, then releases them,
deduplicated by cursor: no gap, no duplicate.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from broadcast.bus import Bus
from broadcast.events import Event, cursor_key
from broadcast.expiry import Deadlines


class Connection:
    """What the hub needs of a transport (WebSocket, SSE, long-poll)."""

    transport = "unknown"

    def __init__(self, user: Any, expires_at: float = math.inf) -> None:
        self.user = user
        self.expires_at = expires_at   # the token's `exp`: nothing is delivered from then on
        self.positions: dict[str, tuple[int, int] | None] = {}
        self.held: dict[str, list[Event]] = {}

    def expire(self) -> None:
        """The token ran out: end the connection (4001 on WebSocket, the response elsewhere)."""
        raise NotImplementedError

    def send_event(self, ev: Event) -> None:
        raise NotImplementedError

    def offer(self, ev: Event) -> None:
        held = self.held.get(ev.topic)
        if held is not None:
            held.append(ev)
        else:
            self.pass_on(ev)

    def pass_on(self, ev: Event) -> None:
        key = ev.key
        if key is not None:
            if key <= (self.positions.get(ev.topic) or (0, 0)):
                return  # already delivered by the replay (or an earlier copy)
            self.positions[ev.topic] = key
        self.send_event(ev)

    def offer_many(self, topic: str, events: list[Event]) -> None:
        """`offer` for several events of one topic, in order (the bus's batches)."""
        held = self.held.get(topic)
        if held is not None:
            held.extend(events)
            return
        position = self.positions.get(topic) or (0, 0)
        out = []
        for ev in events:
            key = ev.key
            if key is not None:
                if key <= position:
                    continue
                position = key
                self.positions[topic] = key
            out.append(ev)
        if out:
            self.send_events(out)

    def send_events(self, events: list[Event]) -> None:
        """Send several events in order; transports may write them at once."""
        for ev in events:
            self.send_event(ev)

    @property
    def topics(self) -> list[str]:
        return list(self.positions)


AckFn = Callable[[bool, str], None]


class Hub:
    def __init__(self, bus: Bus, on_delivered: Callable[[Event, int], None] | None = None) -> None:
        self.bus = bus
        self.local: dict[str, set[Connection]] = {}
        self.connections: set[Connection] = set()
        self._lock = threading.RLock()
        self._on_delivered = on_delivered
        self.deadlines = Deadlines()
        bus.attach(_Dispatcher(self))

    def dispatch(self, ev: Event) -> None:
        conns = self.local.get(ev.topic)
        if not conns:
            return
        # Offers never block (transports only queue or write without waiting),
        # so holding the lock here is cheap and keeps each topic's order.
        now = time.time()
        with self._lock:
            targets = tuple(conns)
            for conn in targets:
                if conn.expires_at <= now:
                    conn.expire()
                else:
                    conn.offer(ev)
        if self._on_delivered is not None:
            self._on_delivered(ev, len(targets))

    def dispatch_many(self, events: list[Event]) -> None:
        """`dispatch` for events that arrived together, in order.

        Consecutive events of one topic go to each connection in one call, so a
        transport can write them with one system call instead of one per event.
        """
        if len(events) == 1:
            self.dispatch(events[0])
            return
        runs: list[tuple[str, list[Event]]] = []
        for ev in events:
            if runs and runs[-1][0] == ev.topic:
                runs[-1][1].append(ev)
            else:
                runs.append((ev.topic, [ev]))
        for topic, run in runs:
            if len(run) == 1:
                self.dispatch(run[0])
                continue
            conns = self.local.get(topic)
            if not conns:
                continue
            now = time.time()
            with self._lock:
                targets = tuple(conns)
                for conn in targets:
                    if conn.expires_at <= now:
                        conn.expire()
                    else:
                        conn.offer_many(topic, run)
            if self._on_delivered is not None:
                for ev in run:
                    self._on_delivered(ev, len(targets))

    def register(self, conn: Connection) -> None:
        with self._lock:
            self.connections.add(conn)
        if conn.expires_at != math.inf:
            self.deadlines.add(conn)

    def extend(self, conn: Connection, expires_at: float) -> None:
        """A refreshed token: `conn` now lives until `expires_at`."""
        conn.expires_at = expires_at
        self.deadlines.add(conn)

    def join(self, conn: Connection, topic: str, since: str | None, ack: AckFn | None) -> None:
        """Subscribe `conn` to `topic`, replaying what came after `since`.

        `ack(recovered, cursor)` is called before any replayed event, as the
        contract orders. With `since` older than the kept history nothing is
        replayed (`recovered` False) and live delivery goes on from `cursor`.
        Without `since`, live delivery starts from the newest event once the
        subscription is active (no cursor is even read when there is no ack to
        carry it: the user topic joined on connect). Raises BadCursor for a
        malformed `since`.
        """
        if since is not None:
            cursor_key(since)
        if topic in conn.positions:
            self.leave(conn, topic)
        with self._lock:
            conn.held[topic] = []
            conn.positions[topic] = None
            self.local.setdefault(topic, set()).add(conn)
        try:
            self.bus.listen(topic)
            if since is None:
                events, recovered = [], True
                cursor = since = self.bus.latest(topic) if ack is not None else None
            else:
                events, recovered = self.bus.history(topic, since)
                cursor = events[-1].id if events else since
                if not recovered:
                    cursor = self.bus.latest(topic)
        except BaseException:
            self.leave(conn, topic)
            raise
        with self._lock:
            held = conn.held.pop(topic, None)
            if held is None:
                return  # left while joining
            start = since if recovered else cursor
            conn.positions[topic] = cursor_key(start) if start is not None else None
            if ack is not None:
                ack(recovered, cursor)
            for ev in events:
                conn.pass_on(ev)
            for ev in held:
                conn.pass_on(ev)

    def leave(self, conn: Connection, topic: str) -> None:
        with self._lock:
            conn.positions.pop(topic, None)
            conn.held.pop(topic, None)
            conns = self.local.get(topic)
            if conns is None:
                return
            conns.discard(conn)
            idle = not conns
            if idle:
                del self.local[topic]
        if idle:
            self.bus.unlisten(topic)

    def drop(self, conn: Connection) -> None:
        for topic in conn.topics:
            self.leave(conn, topic)
        with self._lock:
            self.connections.discard(conn)

    def count(self, transport: str | None = None) -> int:
        return sum(1 for c in tuple(self.connections) if transport in (None, c.transport))


class _Dispatcher:
    """The hub as a bus listener: `listener(ev)`, and `listener.many(events)` for a batch."""

    __slots__ = ("dispatch", "many")

    def __init__(self, hub: Hub) -> None:
        self.dispatch = hub.dispatch
        self.many = hub.dispatch_many

    def __call__(self, ev: Event) -> None:
        self.dispatch(ev)
