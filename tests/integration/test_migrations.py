"""Migrations and models never drift: migrate a fresh database, then compare with the models."""
from __future__ import annotations

import multiprocessing
import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import models
from alembic.script import ScriptDirectory
from models.migrate import alembic_config, upgrade

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def pg_url():
    name = f"sb_mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, models.Base.metadata)
    finally:
        engine.dispose()


def _assert_at_head(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert set(models.Base.metadata.tables) <= tables


def test_postgresql_schema_matches_models(pg_url):
    upgrade(pg_url)
    _assert_at_head(pg_url)
    assert _diff(pg_url) == []
    upgrade(pg_url)  # a second run is a no-op


def test_sqlite_schema_matches_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'sb.db'}"
    upgrade(url)
    _assert_at_head(url)
    assert _diff(url) == []
    upgrade(url)


def _upgrade_in_child(url: str) -> None:
    upgrade(url)


@pytest.mark.parametrize("engine_name", ["postgresql", "sqlite"])
def test_concurrent_upgrades(engine_name, request, tmp_path):
    """Several processes migrating the same fresh database at once all succeed."""
    if engine_name == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'sb.db'}"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_upgrade_in_child, args=(url,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    _assert_at_head(url)
    assert _diff(url) == []
