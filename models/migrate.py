"""Bring a database to the latest schema: `upgrade(url)` or `python -m models.migrate`.

Safe to run from several processes at once: on PostgreSQL the upgrade runs under a
session-level `pg_advisory_lock`; on a SQLite file under an exclusive `flock` on
`<file>.migrate.lock`. The late comers wait, then find nothing left to do.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from settings import Settings, normalise_database_url

ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = ROOT / "alembic.ini"
# Any constant 64-bit key; "switchboard-migrate" folded into a bigint.
ADVISORY_LOCK_KEY = 0x5B_D1_9A_7E_00_00_00_01

log = logging.getLogger(__name__)


def alembic_config(url: str) -> Config:
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


@contextlib.contextmanager
def _pg_lock(url: str) -> Iterator[None]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path + ".migrate.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _lock(url: str) -> contextlib.AbstractContextManager[None]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _pg_lock(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not parsed.database.startswith("file:"):
        return _file_lock(os.path.abspath(parsed.database))
    return contextlib.nullcontext()


def upgrade(url: str, revision: str = "head") -> None:
    """Run `alembic upgrade <revision>` against `url`, serialised across processes."""
    url = normalise_database_url(url)
    with _lock(url):
        command.upgrade(alembic_config(url), revision)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    url = Settings.from_env().database_url
    log.info("migrating %s", make_url(url).render_as_string(hide_password=True))
    upgrade(url)
    log.info("database at head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
