"""A pooled connection that died while idle is replaced before anyone uses it."""
from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models import make_engine
from settings import normalise_database_url

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def test_connections_killed_while_idle_are_replaced_on_checkout(pg_url):
    engine = make_engine(normalise_database_url(pg_url), pool_size=2, idle_ping_seconds=0)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        kill(pid)
        with engine.connect() as conn:  # the pooled one is dead: checked, replaced
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()


def test_a_recently_used_connection_is_not_pinged_and_a_failure_renews_the_pool(pg_url):
    """Within the idle threshold nothing is checked (no round trip): a connection killed
    that instant fails its statement once, and the pool then starts afresh."""
    engine = make_engine(normalise_database_url(pg_url), pool_size=2, idle_ping_seconds=3600)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        kill(pid)
        with pytest.raises(DBAPIError) as failed, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()


def kill(pid: int) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]
