"""`make demo`: the distributed mode gets the same demo shop as `make run`, and loading it
twice changes nothing."""
from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import create_engine, func, select

from models import Agent, Customer, Order, Product
from tests.support.databases import fresh_pg_database
from tests.support.procs import ROOT

REDIS_URL = "redis://127.0.0.1:6379/0"


def load(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "demo_data"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def counts(url: str) -> tuple[int, ...]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        found = tuple(conn.scalar(select(func.count()).select_from(m)) for m in (Product, Agent, Customer, Order))
    engine.dispose()
    return found


def test_make_demo_loads_the_demo_shop_once(redis_prefix):
    with fresh_pg_database() as url:
        env = {"DATABASE_URL": url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": redis_prefix}
        assert "/shop/" in load(env)
        first = counts(url)
        assert first == (3, 3, 3, 1)
        load(env)
        assert counts(url) == first
