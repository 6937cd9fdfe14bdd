"""Shared setup of the commerce benchmarks: a fresh migrated PostgreSQL database, web processes."""
from __future__ import annotations

import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from models.migrate import upgrade  # noqa: E402
from tests.support.procs import WebServer  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def stack(web_processes: int = 2, **env_extra: str):
    """Yields (servers, env): gunicorn web processes on a throwaway database and Redis prefix."""
    name = f"sb_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    upgrade(url)
    env = {"DATABASE_URL": url, "REDIS_URL": REDIS_URL,
           "REDIS_PREFIX": f"sbb{uuid.uuid4().hex[:6]}:", **env_extra}
    logs = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    servers = [WebServer(env, logs, f"web-{i}").start() for i in range(web_processes)]
    try:
        yield servers, env
    finally:
        for s in servers:
            s.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
