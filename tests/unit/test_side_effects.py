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


def test_a_failing_effect_is_isolated_logged_and_counted(sessions, bus, caplog):
    from models.session import AFTER_COMMIT_FAILURES, after_commit

    ran = []

    def broken_publish():
        raise ConnectionError("redis is away")

    before = AFTER_COMMIT_FAILURES.labels(broken_publish.__qualname__)._value.get()
    with session_scope(sessions) as session:
        session.add(User(id="u3", role="customer"))
        after_commit(session, ran.append, "first")
        after_commit(session, broken_publish)
        after_commit(session, ran.append, "after the failure")
    assert ran == ["first", "after the failure"]
    assert AFTER_COMMIT_FAILURES.labels(broken_publish.__qualname__)._value.get() == before + 1
    assert "broken_publish" in caplog.text
    with session_scope(sessions) as session:   # the session machinery is intact
        assert session.get(User, "u3") is not None


def test_a_request_whose_publish_fails_after_commit_gets_its_result(make_app, monkeypatch):
    from tests.support.clients import auth
    app = make_app()
    bus = app.extensions["switchboard"].bus

    def down(events):
        raise ConnectionError("redis is away")

    monkeypatch.setattr(bus, "publish_many", down)
    client = app.test_client()
    resp = client.put("/api/v1/products/p9/stock", json={"quantity": 4}, headers=auth("store"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert client.get("/api/v1/products/p9/stock", headers=auth("store")).get_json()[
        "variants"][0]["available_quantity"] == 4
    assert "switchboard_after_commit_failures_total" in client.get("/metrics").get_data(as_text=True)


def test_metrics_content_type_names_its_charset_once(client):
    content_type = client.get("/metrics").headers["Content-Type"]
    assert content_type.count("charset") == 1, content_type
