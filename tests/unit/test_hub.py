"""The hub: replay then live, no gap and no duplicate, even for events published during the replay."""
from __future__ import annotations

from broadcast.bus import MemoryBus
from broadcast.events import BEFORE_FIRST
from broadcast.hub import Connection, Hub


class Recorder(Connection):
    transport = "test"

    def __init__(self) -> None:
        super().__init__(user=None)
        self.got: list = []

    def send_event(self, ev) -> None:
        self.got.append(("event", ev.topic, ev.id, ev.data))


def acker(conn):
    def ack(recovered, cursor):
        conn.got.append(("ack", recovered, cursor))
    return ack


def test_join_without_since_gets_only_new_events():
    bus = MemoryBus()
    hub = Hub(bus)
    bus.publish("product:1", "e", {"n": 0})
    conn = Recorder()
    hub.join(conn, "product:1", None, acker(conn))
    new = bus.publish("product:1", "e", {"n": 1})
    assert conn.got[0][0] == "ack" and conn.got[0][1] is True
    assert conn.got[1:] == [("event", "product:1", new, {"n": 1})]


def test_resume_replays_after_ack_in_order_then_live():
    bus = MemoryBus()
    hub = Hub(bus)
    ids = [bus.publish("product:1", "e", {"n": i}) for i in range(5)]
    conn = Recorder()
    hub.join(conn, "product:1", ids[1], acker(conn))
    live = bus.publish("product:1", "e", {"n": 5})
    assert conn.got[0] == ("ack", True, ids[-1])
    assert [g[2] for g in conn.got[1:]] == ids[2:] + [live]


class RacingBus(MemoryBus):
    """Publishes while the hub reads history: the events a real replay races with."""

    def __init__(self) -> None:
        super().__init__()
        self.during_replay = 0

    def history(self, topic, since, limit=None):
        for i in range(self.during_replay):
            self.publish(topic, "e", {"during": i})
        return super().history(topic, since, limit)


def test_events_published_during_the_replay_arrive_once_in_order():
    bus = RacingBus()
    hub = Hub(bus)
    before = [bus.publish("product:1", "e", {"n": i}) for i in range(3)]
    bus.during_replay = 4
    conn = Recorder()
    hub.join(conn, "product:1", BEFORE_FIRST, acker(conn))
    ids = [g[2] for g in conn.got if g[0] == "event"]
    bus.during_replay = 0
    stored, _ = bus.history("product:1", BEFORE_FIRST)
    assert ids == [e.id for e in stored]  # every event, once, in cursor order
    assert ids[:3] == before and len(ids) == 7


def test_cursor_older_than_history_is_not_replayed_in_part():
    bus = MemoryBus(min_events=3, min_seconds=0)
    hub = Hub(bus)
    ids = [bus.publish("product:1", "e", {"n": i}) for i in range(10)]
    conn = Recorder()
    hub.join(conn, "product:1", ids[0], acker(conn))
    assert conn.got == [("ack", False, ids[-1])]
    live = bus.publish("product:1", "e", {"n": 10})
    assert conn.got[-1][2] == live


def test_leave_and_drop_stop_delivery_and_release_the_topic():
    bus = MemoryBus()
    hub = Hub(bus)
    a, b = Recorder(), Recorder()
    hub.register(a)
    hub.join(a, "product:1", None, acker(a))
    hub.join(b, "product:1", None, acker(b))
    hub.leave(a, "product:1")
    bus.publish("product:1", "e", {})
    assert [g[0] for g in a.got] == ["ack"]
    assert [g[0] for g in b.got] == ["ack", "event"]
    hub.drop(b)
    hub.drop(a)
    assert "product:1" not in hub.local and a not in hub.connections


def test_ephemeral_events_reach_live_subscribers():
    bus = MemoryBus()
    hub = Hub(bus)
    conn = Recorder()
    hub.join(conn, "conversation:1", None, acker(conn))
    bus.publish("conversation:1", "user:typing", {"user_id": "u"}, ephemeral=True)
    assert conn.got[-1] == ("event", "conversation:1", None, {"user_id": "u"})


class PacedRecorder(Recorder):
    """Keeps the replay to step it by hand, as a transport does as its client reads."""

    def __init__(self) -> None:
        super().__init__()
        self.replays = []

    def pace(self, replay) -> None:
        self.replays.append(replay)

    def read_on(self) -> int:
        steps = 0
        while self.replays:
            if not self.replays[0].step():
                self.replays.pop(0)
            steps += 1
        return steps


def test_a_replay_longer_than_a_page_is_read_page_by_page_as_the_client_reads():
    from broadcast.hub import PAGE
    bus = MemoryBus(min_events=10_000)
    hub = Hub(bus)
    ids = [bus.publish("product:1", "e", {"n": i}) for i in range(3 * PAGE + 7)]
    conn = PacedRecorder()
    hub.join(conn, "product:1", BEFORE_FIRST, acker(conn))
    assert conn.got[0] == ("ack", True, ids[-1])
    assert len(conn.got) == 1 + PAGE            # one page, then it waits for the client
    live = bus.publish("product:1", "e", {"n": "live"})   # held while the replay goes on
    assert conn.read_on() == 3
    assert [g[2] for g in conn.got[1:]] == ids + [live]


def test_live_events_past_the_held_bound_are_read_again_from_history():
    from broadcast.hub import HELD_LIMIT, PAGE
    bus = MemoryBus(min_events=100_000)
    hub = Hub(bus)
    ids = [bus.publish("product:1", "e", {"n": i}) for i in range(PAGE + 1)]
    conn = PacedRecorder()
    hub.join(conn, "product:1", BEFORE_FIRST, acker(conn))
    # A burst while the client reads slowly: more than the hub holds for it.
    ids += [bus.publish("product:1", "e", {"n": i}) for i in range(HELD_LIMIT + 300)]
    conn.read_on()
    ids.append(bus.publish("product:1", "e", {"n": "after"}))
    assert [g[2] for g in conn.got[1:]] == ids   # every event once, in order


def test_history_lost_during_a_replay_is_said_with_a_reset_then_live():
    from broadcast.hub import PAGE

    class Forgetful(MemoryBus):
        def __init__(self):
            super().__init__(min_events=10_000)
            self.reads = 0

        def history(self, topic, since, limit=None):
            self.reads += 1
            if self.reads > 1:          # the history went away after the first page
                return [], False
            return super().history(topic, since, limit)

    bus = Forgetful()
    hub = Hub(bus)
    ids = [bus.publish("product:1", "e", {"n": i}) for i in range(PAGE + 5)]
    conn = PacedRecorder()
    hub.join(conn, "product:1", BEFORE_FIRST, acker(conn))
    conn.read_on()
    reset = conn.got[1 + PAGE]
    assert reset[:2] == ("event", "product:1") and reset[2] is None
    assert reset[3] == {"topic": "product:1", "cursor": ids[-1]}
    live = bus.publish("product:1", "e", {"n": "live"})
    assert conn.got[-1][2] == live and len(conn.got) == 1 + PAGE + 2


def test_a_connection_is_given_nothing_once_its_token_expired():
    import time
    bus = MemoryBus()
    hub = Hub(bus)
    expired = []

    class Expiring(Recorder):
        def expire(self):
            expired.append(self)

    conn = Expiring()
    hub.join(conn, "product:1", None, acker(conn))
    bus.publish("product:1", "e", {"n": 1})
    conn.expires_at = time.time() - 1
    bus.publish("product:1", "e", {"n": 2})
    assert [g[3] for g in conn.got if g[0] == "event"] == [{"n": 1}]
    assert expired == [conn]
