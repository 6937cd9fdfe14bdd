"""Side effects made inside a transaction run after the commit, never after a rollback."""
from __future__ import annotations

import pytest

import broadcast
from broadcast.bus import MemoryBus
from broadcast.events import BEFORE_FIRST
from models import User, make_engine, make_session_factory, session_scope


@pytest.fixture
def sessions(sqlite_url):
    return make_session_factory(make_engine(sqlite_url))


@pytest.fixture
def bus():
    bus = MemoryBus()
    broadcast.use_bus(bus)
    yield bus
    broadcast.use_bus(None)


def test_publish_waits_for_commit(sessions, bus):
    with session_scope(sessions) as session:
        session.add(User(id="u1", role="customer"))
        broadcast.publish("user:u1", "hello", {}, session=session)
        assert bus.history("user:u1", BEFORE_FIRST) == ([], True)
    events, _ = bus.history("user:u1", BEFORE_FIRST)
    assert [e.name for e in events] == ["hello"]


def test_publish_dropped_on_rollback(sessions, bus):
    with pytest.raises(RuntimeError):
        with session_scope(sessions) as session:
            session.add(User(id="u2", role="customer"))
            broadcast.publish("user:u2", "hello", {}, session=session)
            raise RuntimeError("boom")
    with session_scope(sessions) as session:
        broadcast.publish("user:u2", "after", {}, session=session)
    events, _ = bus.history("user:u2", BEFORE_FIRST)
    assert [e.name for e in events] == ["after"]
