"""Alembic environment.

URL: `config.attributes["url"]` when given (models.migrate.upgrade), else
`Settings.from_env().database_url` (DATABASE_URL). A caller may instead hand over an open
`config.attributes["connection"]`. SQLite runs in batch mode (ALTER TABLE emulation).
"""
from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

import models
from models.types import UTCDateTime

config = context.config

# Configure logging only for the `alembic` command line, never for a process that
# migrates programmatically (it has its own logging, which fileConfig would clobber).
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = models.Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return url
    from settings import Settings

    return Settings.from_env().database_url


def _render_item(type_, obj, autogen_context):  # noqa: ANN001
    # Our UTC type decorator is DateTime(timezone=True) in the schema.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _options(dialect_name: str) -> dict:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": dialect_name == "sqlite",
        "render_item": _render_item,
        "compare_type": True,
    }


def run_migrations_offline() -> None:
    url = _url()
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
                      **_options(url.split(":", 1)[0].split("+", 1)[0]))
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # A plain engine, not models.session.make_engine: on SQLite, batch migrations copy and
    # drop tables, which must not run with PRAGMA foreign_keys=ON (cascades would fire).
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
