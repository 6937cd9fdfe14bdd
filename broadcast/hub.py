"""The per-process hub: local interest per topic, resume without gaps, fan-out.

The bus hands every live event of a listened topic to `Hub.dispatch`; the hub
offers it to each local connection that joined the topic. A connection that
is joining holds live events while its replay is read, then releases them,
deduplicated by cursor: no gap, no duplicate.

A replay is read from history a page at a time, and the next page only once
the transport says the client has taken the last one (`Connection.pace`): so
a replay of any length inside the kept history completes, and none of it
goes through the live outbox, whose bound is for live events. Live events of
the topic arriving meanwhile are held (bounded: past `HELD_LIMIT` they are
dropped and read again from history, where they are too).
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from broadcast.bus import Bus, now_ms
from broadcast.events import Event, cursor_key, parse_cursor, reset_event
from broadcast.expiry import Deadlines

# Events read from history at once by a replay.
PAGE = 500
# Live events held per joining topic before they are dropped and re-read from history.
HELD_LIMIT = 1000


class _Overrun:
    """Marks a held list whose events were dropped: the replay reads history again."""


OVERRUN: Any = _Overrun()


class _Held(list[Event]):
    """Live events of a joining topic. Bounded once a paced replay reads on (it may take
    as long as the client's reading); before that only for one read of history."""

    bounded = False


class Connection:
    """What the hub needs of a transport (WebSocket, SSE, long-poll)."""

    transport = "unknown"
    __slots__ = ("user", "expires_at", "positions", "held", "__weakref__")

    def __init__(self, user: Any, expires_at: float = math.inf) -> None:
        self.user = user
        self.expires_at = expires_at   # the token's `exp`: nothing is delivered from then on
        self.positions: dict[str, tuple[int, int] | None] = {}
        self.held: dict[str, _Held] = {}

    def expire(self) -> None:
        """The token ran out: end the connection (4001 on WebSocket, the response elsewhere)."""
        raise NotImplementedError

    def send_event(self, ev: Event) -> None:
        raise NotImplementedError

    def send_events(self, events: list[Event]) -> None:
        """Send several events in order; transports may write them at once."""
        for ev in events:
            self.send_event(ev)

    def send_replayed(self, events: list[Event]) -> None:
        """Replayed events, in order, past the live outbox's bound (a replay is paced instead)."""
        self.send_events(events)

    def pace(self, replay: Replay) -> None:
        """Drive `replay` (call `replay.step()` until it returns False) as the client reads.

        The default runs it at once, unpaced: for connections that read at
        once (tests). Transports step it as their socket drains.
        """
        while replay.step():
            pass

    def admit(self, ev: Event) -> bool:
        """Whether `ev` is new to this connection (its position moves past it)."""
        key = ev.key
        if key is not None:
            if key <= (self.positions.get(ev.topic) or (0, 0)):
                return False  # already delivered by the replay (or an earlier copy)
            self.positions[ev.topic] = key
        elif ev.reset_to is not None:
            self.positions[ev.topic] = ev.reset_to
        return True

    def offer(self, ev: Event) -> None:
        held = self.held.get(ev.topic)
        if held is not None:
            _hold(held, ev)
        elif self.admit(ev):
            self.send_event(ev)

    def pass_on(self, ev: Event) -> None:
        if self.admit(ev):
            self.send_event(ev)

    def offer_many(self, topic: str, events: list[Event]) -> None:
        """`offer` for several events of one topic, in order (the bus's batches)."""
        held = self.held.get(topic)
        if held is not None:
            for ev in events:
                _hold(held, ev)
            return
        out = [ev for ev in events if self.admit(ev)]
        if out:
            self.send_events(out)

    @property
    def topics(self) -> list[str]:
        return list(self.positions)


def _hold(held: _Held, ev: Event) -> None:
    if held.bounded and len(held) >= HELD_LIMIT:
        held.clear()
        held.append(OVERRUN)
    held.append(ev)


AckFn = Callable[[bool, str], None]


class Replay:
    """The rest of a replay longer than a page: the transport calls `step` as its client reads."""

    def __init__(self, hub: Hub, conn: Connection, topic: str, held: _Held,
                 after: str | None) -> None:
        self.hub, self.conn, self.topic = hub, conn, topic
        self._held, self._after = held, after

    def _current(self) -> bool:
        # Left, rejoined or dropped since: this replay is no longer the connection's.
        return self.conn.held.get(self.topic) is self._held

    def step(self) -> bool:
        """Deliver the next page; False once the topic is live (or the replay was abandoned)."""
        hub, conn, topic = self.hub, self.conn, self.topic
        with hub._lock:
            if not self._current():
                return False
            if self._held and self._held[0] is OVERRUN:
                self._held.clear()   # what was dropped is read from history below
        if conn.expires_at <= time.time():
            conn.expire()
            return False
        # Never None here: only a join without `since` and without an ack starts
        # from None, and its empty first page ends the replay (`Hub.join`).
        assert self._after is not None
        page, recovered = hub.bus.history(topic, self._after, limit=PAGE)
        latest = None if recovered else hub.bus.latest(topic)
        with hub._lock:
            if not self._current():
                return False
            if latest is not None:   # not recovered
                # Trimmed under a slow reader, or the history's epoch ended:
                # say so, and go on live from the newest event.
                conn.pass_on(reset_event(topic, latest, now_ms()))
                hub._release(conn, topic)
                return False
            return self._deliver(page)

    def _deliver(self, page: list[Event]) -> bool:
        """With the hub's lock held: send `page`; True while more may follow."""
        self.conn.send_replayed([ev for ev in page if self.conn.admit(ev)])
        if page:
            self._after = page[-1].id
        if len(page) >= PAGE or (self._held and self._held[0] is OVERRUN):
            return True
        self.hub._release(self.conn, self.topic)
        return False


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

    def reset(self, topic: str, cursor: str) -> None:
        """The topic's history was lost while this process listened: tell its connections."""
        ev = reset_event(topic, cursor, now_ms())
        with self._lock:
            for conn in tuple(self.local.get(topic, ())):
                conn.offer(ev)

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
        contract orders; `cursor` is the newest event's. With `since` older
        than the kept history (or of another epoch) nothing is replayed
        (`recovered` False) and live delivery goes on from `cursor`. Without
        `since`, live delivery starts from the newest event once the
        subscription is active (no cursor is even read when there is no ack to
        carry it: the user topic joined on connect). A replay longer than a
        page goes on through `conn.pace`. Raises BadCursor for a malformed
        `since`.
        """
        if since is not None:
            parse_cursor(since)
        if topic in conn.positions:
            self.leave(conn, topic)
        held = _Held()
        with self._lock:
            conn.held[topic] = held
            conn.positions[topic] = None
            self.local.setdefault(topic, set()).add(conn)
        page: list[Event]
        try:
            self.bus.listen(topic)
            if since is None:
                page, recovered = [], True
                cursor = since = self.bus.latest(topic) if ack is not None else None
            else:
                page, recovered = self.bus.history(topic, since, limit=PAGE)
                if recovered and len(page) < PAGE and (page or parse_cursor(since)[1]):
                    cursor = page[-1].id if page else since
                else:   # more to come, refused, or a bare "0-0": name the newest event
                    cursor = self.bus.latest(topic)
        except BaseException:
            self.leave(conn, topic)
            raise
        with self._lock:
            if conn.held.get(topic) is not held:
                return  # left while joining
            start = since if recovered else cursor
            conn.positions[topic] = cursor_key(start) if start is not None else None
            if ack is not None:
                assert cursor is not None   # with an ack, a cursor was always read above
                ack(recovered, cursor)
            replay = Replay(self, conn, topic, held, start)
            more = replay._deliver(page)
            held.bounded = more
        if more:
            conn.pace(replay)

    def _release(self, conn: Connection, topic: str) -> None:
        """With the lock held: the replay is done; what was held goes out, then live."""
        held = conn.held.pop(topic, None)
        for ev in held or ():
            if ev is not OVERRUN:
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


class _Dispatcher:
    """The hub as a bus listener: `listener(ev)`, `listener.many(events)`, `listener.reset(...)`."""

    __slots__ = ("dispatch", "many", "reset")

    def __init__(self, hub: Hub) -> None:
        self.dispatch = hub.dispatch
        self.many = hub.dispatch_many
        self.reset = hub.reset

    def __call__(self, ev: Event) -> None:
        self.dispatch(ev)
