"""One suite, two engines: the in-memory bus and the Redis bus behave the same."""
from __future__ import annotations

import threading
import uuid

import pytest
import redis as redis_lib

from broadcast.bus import MemoryBus
from broadcast.events import BEFORE_FIRST, cursor_key, parse_cursor
from broadcast.redis_bus import RedisBus

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis", "cluster"])
def make_bus(request, redis_prefix):
    made = []
    url = request.getfixturevalue("redis_cluster").url if request.param == "cluster" else REDIS_URL

    def factory(min_events: int = 1000, min_seconds: int = 600):
        if request.param == "memory":
            bus = MemoryBus(min_events, min_seconds)
        else:
            bus = RedisBus(url, redis_prefix, min_events, min_seconds)
        made.append(bus)
        return bus
    yield factory
    for bus in made:
        bus.close()


def topic() -> str:
    return f"product:{uuid.uuid4().hex[:8]}"


def test_cursors_increase_and_history_replays_in_order(make_bus):
    bus, t = make_bus(), topic()
    start = bus.latest(t)
    assert cursor_key(start) == (0, 0) and parse_cursor(start)[1]   # "before the first", with its epoch
    ids = [bus.publish(t, "inventory_update", {"n": i}) for i in range(20)]
    assert {parse_cursor(i)[1] for i in ids} == {parse_cursor(start)[1]}
    assert [e.id for e in bus.history(t, start)[0]] == ids == [e.id for e in bus.history(t, BEFORE_FIRST)[0]]
    assert [cursor_key(i) for i in ids] == sorted(cursor_key(i) for i in ids)
    assert len(set(ids)) == 20
    assert bus.latest(t) == ids[-1]
    events, recovered = bus.history(t, BEFORE_FIRST)
    assert recovered and [e.id for e in events] == ids
    assert [e.data["n"] for e in events] == list(range(20))
    events, recovered = bus.history(t, ids[9])
    assert recovered and [e.id for e in events] == ids[10:]
    assert bus.history(t, ids[-1]) == ([], True)


def test_frame_is_the_contract_shape(make_bus):
    import json
    bus, t = make_bus(), topic()
    eid = bus.publish(t, "inventory_update", {"q": "<b>é</b>"})
    [ev], _ = bus.history(t, BEFORE_FIRST)
    frame = json.loads(ev.frame)
    assert frame["event"] == "inventory_update" and frame["topic"] == t and frame["id"] == eid
    assert frame["data"] == {"q": "<b>é</b>"} and isinstance(frame["ts"], int)
    assert ev.ws_bytes[0] == 0x81 and ev.ws_bytes.endswith(ev.frame.encode())


def test_idempotent_publish_stores_once(make_bus):
    bus, t = make_bus(), topic()
    key = uuid.uuid4().hex
    first = bus.publish(t, "x", {"a": 1}, idempotency_key=key)
    again = bus.publish(t, "x", {"a": 2}, idempotency_key=key)
    assert first == again
    events, _ = bus.history(t, BEFORE_FIRST)
    assert len(events) == 1 and events[0].data == {"a": 1}


def test_an_idempotency_key_is_the_topics_own(make_bus):
    """Scoped per topic (on a cluster a key lives in its topic's slot): another topic's
    event under the same key is another event, not the first topic's id."""
    bus, t, other = make_bus(), topic(), topic()
    key = uuid.uuid4().hex
    bus.publish(t, "x", {"a": 1}, idempotency_key=key)
    elsewhere = bus.publish(other, "x", {"a": 2}, idempotency_key=key)
    assert [(e.id, e.data) for e in bus.history(other, BEFORE_FIRST)[0]] == [(elsewhere, {"a": 2})]


def test_publish_many_is_publish_in_order(make_bus):
    """One call for several events: ids, history, idempotency and ephemera as publish gives."""
    from broadcast.bus import Outgoing
    bus, a, b = make_bus(), topic(), topic()
    key = uuid.uuid4().hex
    batch = [Outgoing(a, "x", {"n": 0}), Outgoing(b, "x", {"n": 1}, idempotency_key=key),
             Outgoing(a, "x", {"n": 2}), Outgoing(b, "typing", {"n": 3}, ephemeral=True)]
    ids = bus.publish_many(batch)
    assert ids[3] is None and all(ids[:3])
    assert bus.publish_many(batch[1:2]) == [ids[1]]  # a retried batch: nothing twice
    single = bus.publish(a, "x", {"n": 4})
    got_a, _ = bus.history(a, BEFORE_FIRST)
    got_b, _ = bus.history(b, BEFORE_FIRST)
    assert [e.id for e in got_a] == [ids[0], ids[2], single]
    assert [e.data["n"] for e in got_a] == [0, 2, 4] and [e.data["n"] for e in got_b] == [1]
    assert cursor_key(ids[0]) < cursor_key(ids[2]) < cursor_key(single)


def test_redis_publish_many_survives_a_script_cache_flush(redis_prefix):
    """A restarted Redis has no scripts: the batch loads it and runs once, not twice."""
    from broadcast.bus import Outgoing
    bus, t = RedisBus(REDIS_URL, redis_prefix), topic()
    try:
        bus.redis.script_flush()
        ids = bus.publish_many([Outgoing(t, "x", {"n": 0}), Outgoing(t, "x", {"n": 1})])
        got, _ = bus.history(t, BEFORE_FIRST)
        assert [e.id for e in got] == ids and [e.data["n"] for e in got] == [0, 1]
    finally:
        bus.close()


def test_ephemeral_events_are_live_only(make_bus):
    bus, t = make_bus(), topic()
    got = []
    arrived = threading.Event()

    def listener(ev):
        if ev.topic == t:
            got.append(ev)
            arrived.set()
    bus.attach(listener)
    bus.listen(t)
    assert bus.publish(t, "user:typing", {"user_id": "u"}, ephemeral=True) is None
    assert arrived.wait(5)
    assert got[0].id is None and got[0].name == "user:typing"
    assert bus.history(t, BEFORE_FIRST) == ([], True)


def test_live_delivery_in_publish_order(make_bus):
    bus, t = make_bus(), topic()
    got = []
    done = threading.Event()

    def listener(ev):
        if ev.topic == t:
            got.append(ev.id)
            if len(got) == 50:
                done.set()
    bus.attach(listener)
    bus.listen(t)
    ids = [bus.publish(t, "e", {"i": i}) for i in range(50)]
    assert done.wait(10)
    assert got == ids


def test_trimmed_history_is_reported_not_replayed_in_part(make_bus):
    bus, t = make_bus(min_events=5, min_seconds=0), topic()
    ids = [bus.publish(t, "e", {"i": i}) for i in range(200)]
    events, recovered = bus.history(t, ids[0])
    assert recovered is False and events == []
    events, recovered = bus.history(t, ids[-3])
    assert recovered and [e.id for e in events] == ids[-2:]
    # at least the newest `min_events` are kept
    events, recovered = bus.history(t, ids[-6])
    assert recovered and len(events) == 5


def test_malformed_cursor_is_refused(make_bus):
    from broadcast.events import BadCursor
    bus = make_bus()
    with pytest.raises(BadCursor):
        bus.history(topic(), "yesterday")


def test_redis_history_of_a_lost_stream_is_not_recovered(redis_prefix):
    bus = RedisBus(REDIS_URL, redis_prefix)
    t = topic()
    eid = bus.publish(t, "e", {})
    redis_lib.Redis.from_url(REDIS_URL).delete(bus._stream(t))  # e.g. Redis restarted empty
    assert bus.history(t, eid) == ([], False)
    assert bus.history(t, BEFORE_FIRST) == ([], True)
    bus.close()


def test_history_reads_in_pages(make_bus):
    bus, t = make_bus(), topic()
    ids = [bus.publish(t, "e", {"i": i}) for i in range(25)]
    got, after = [], BEFORE_FIRST
    for expected in (10, 10, 5, 0):
        page, recovered = bus.history(t, after, limit=10)
        assert recovered and len(page) == expected
        got += [e.id for e in page]
        after = page[-1].id if page else after
    assert got == ids


def test_a_cursor_of_another_epoch_is_never_recovered(make_bus):
    bus, t = make_bus(), topic()
    ids = [bus.publish(t, "e", {"i": i}) for i in range(3)]
    position, epoch = ids[0].split(":")
    other = f"{position}:{'0' * 8 if epoch != '0' * 8 else '1' * 8}"
    assert bus.history(t, other) == ([], False)
    assert bus.history(t, "0-0:" + other.split(":")[1]) == ([], False)
    assert bus.history(t, position) == ([], False)   # a bare cursor names no history
    assert [e.id for e in bus.history(t, ids[0])[0]] == ids[1:]


def test_two_processes_see_one_epoch_per_topic(redis_prefix):
    a, b = RedisBus(REDIS_URL, redis_prefix), RedisBus(REDIS_URL, redis_prefix)
    t = topic()
    try:
        before = a.latest(t)                 # the epoch is made when first needed, by a reader too
        assert b.latest(t) == before
        eid = b.publish(t, "e", {})
        assert parse_cursor(eid)[1] == parse_cursor(before)[1]
        assert [e.id for e in a.history(t, before)[0]] == [eid]
    finally:
        a.close()
        b.close()


def test_a_deleted_stream_starts_a_new_epoch(redis_prefix):
    bus = RedisBus(REDIS_URL, redis_prefix)
    t = topic()
    try:
        start = bus.latest(t)
        first = bus.publish(t, "e", {"n": 1})
        redis_lib.Redis.from_url(REDIS_URL).delete(bus._stream(t))
        again = bus.publish(t, "e", {"n": 2})
        assert parse_cursor(again)[1] != parse_cursor(first)[1]
        # Both cursors of the old history point into events that are gone.
        assert bus.history(t, first) == ([], False)
        assert bus.history(t, start) == ([], False)
        assert [e.id for e in bus.history(t, "0-0:" + parse_cursor(again)[1])[0]] == [again]
    finally:
        bus.close()


def test_an_empty_topic_keeps_its_epoch_until_its_first_event(make_bus):
    bus, t = make_bus(), topic()
    start = bus.latest(t)
    eid = bus.publish(t, "e", {})
    assert [e.id for e in bus.history(t, start)[0]] == [eid]   # nothing was lost: recovered
