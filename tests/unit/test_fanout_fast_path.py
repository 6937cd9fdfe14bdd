"""A WebSocket's `offer` (fan-out's inner loop, written out) equals the reference
`Connection.offer`: the same bytes reach the client and the same positions are kept,
for any sequence of events (new, repeated, out of order, ephemeral, resets) and any
moment a topic is being joined."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broadcast.events import Event, reset_event
from broadcast.hub import Connection, _Held
from broadcast.ws import WebSocketConnection
from tests.support.sockets import owned_pair, read_to_eof

TOPICS = ("product:1", "product:2")

EVENTS = st.lists(st.one_of(
    st.tuples(st.just("event"), st.sampled_from(TOPICS), st.integers(1, 6)),
    st.tuples(st.just("ephemeral"), st.sampled_from(TOPICS)),
    st.tuples(st.just("reset"), st.sampled_from(TOPICS), st.integers(0, 6)),
    st.tuples(st.just("join"), st.sampled_from(TOPICS)),
    st.tuples(st.just("joined"), st.sampled_from(TOPICS)),
), max_size=30)


def _event(step: tuple) -> Event | None:
    if step[0] == "event":
        return Event.build(step[1], "tick", f"{1000 + step[2]}-0:ep", 1, {"n": step[2]})
    if step[0] == "ephemeral":
        return Event.build(step[1], "user:typing", None, 1, {})
    if step[0] == "reset":
        return reset_event(step[1], f"{1000 + step[2]}-0:ep2", 1)
    return None


def _connection():
    raw, peer = owned_pair()
    conn = WebSocketConnection(None, raw, outbox_limit=1000, max_frame_bytes=4096, rate=10, burst=10,
                               on_text=lambda c, t: None, on_close=lambda c: None)
    conn.start(b"")
    for topic in TOPICS:
        conn.positions[topic] = None
    return conn, peer


@settings(max_examples=200, deadline=None)
@given(steps=EVENTS)
def test_the_written_out_offer_equals_the_reference(steps):
    fast, fast_peer = _connection()
    ref, ref_peer = _connection()
    for step in steps:
        if step[0] == "join":
            for conn in (fast, ref):
                conn.held.setdefault(step[1], _Held())
            continue
        if step[0] == "joined":   # the replay is done: what was held goes out (Hub._release)
            for conn in (fast, ref):
                for ev in conn.held.pop(step[1], None) or ():
                    conn.pass_on(ev)
            continue
        ev = _event(step)
        fast.offer(ev)
        Connection.offer(ref, ev)
    assert fast.positions == ref.positions
    assert {t: list(h) for t, h in fast.held.items()} == {t: list(h) for t, h in ref.held.items()}
    assert not fast._outbox and not ref._outbox   # all written: closing loses nothing
    for conn in (fast, ref):
        conn.abort()
    assert read_to_eof(fast_peer) == read_to_eof(ref_peer)
