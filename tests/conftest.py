"""Shared fixtures. Apps come from create_app(settings), never from environment mutation."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib

from models.migrate import upgrade
from settings import Settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'switchboard.db'}"
    upgrade(url)
    return url


@pytest.fixture
def make_app(sqlite_url):
    """An app on a migrated SQLite file and the in-memory bus; no background loops."""
    from app import create_app

    def factory(**overrides):
        settings = Settings.of(database_url=sqlite_url, redis_url=None, **overrides)
        return create_app(settings, background=False)
    return factory


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@contextmanager
def fresh_pg_database(prefix: str = "sb_test") -> Iterator[str]:
    """A new, migrated PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh, migrated PostgreSQL database for this test session."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own (REDIS_PREFIX), removed afterwards."""
    prefix = f"sbt{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis_lib.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def stack_env(pg_url, redis_prefix) -> dict[str, str]:
    """Environment of the distributed mode for processes started by a test."""
    return {"DATABASE_URL": pg_url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": redis_prefix}


@pytest.fixture
def procs(tmp_path):
    """Start processes with `procs.start(ProcClass(env, ...))`; all are stopped afterwards."""
    started = []

    class _Procs:
        log_dir = tmp_path

        def start(self, proc):
            started.append(proc)
            return proc.start()

    yield _Procs()
    for proc in reversed(started):
        proc.stop()
