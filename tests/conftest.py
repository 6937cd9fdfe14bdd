"""Shared fixtures. Apps come from create_app(settings), never from environment mutation.

The app's database is the `database_url` fixture: SQLite unless a test asks
for engines with `@pytest.mark.engines(...)`, which runs it once per engine
named (ids `sqlite`, `postgresql`). The suites that must behave the same on
both mark themselves `engines("sqlite", "postgresql")`; what only makes sense
on PostgreSQL marks itself `engines("postgresql")`. Every PostgreSQL run also
carries the `postgresql` marker, so `-m "not postgresql"` leaves it out.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis as redis_lib

from models.migrate import upgrade
from settings import Settings
from tests.support.brokers import BROKERS, rabbitmq_vhost
from tests.support.chat import Events, h, make_agent, open_conv
from tests.support.databases import REDIS_URL, copied_pg_database, fresh_pg_database
from tests.support.redis_cluster import RedisCluster

ENGINES = ("sqlite", "postgresql")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "engines(*names): run the test once per database engine named "
                   "(sqlite, postgresql), through the `database_url` fixture")
    config.addinivalue_line(
        "markers", "postgresql: runs on the local PostgreSQL (set on the postgresql engine's runs)")


def pytest_generate_tests(metafunc):
    """The `engines` marker parametrizes `database_url` (and the app on it) over its engines."""
    marker = metafunc.definition.get_closest_marker("engines")
    if marker is None:
        return
    unknown = set(marker.args) - set(ENGINES)
    if not marker.args or unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: engines{marker.args}: "
                                f"name one or more of {ENGINES}")
    if "database_url" not in metafunc.fixturenames:
        # A marker that chose no database would pass on the default one, silently.
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: marked engines but uses no app "
                                "or database_url")
    metafunc.parametrize("database_url", [
        pytest.param(name, id=name, marks=[pytest.mark.postgresql] if name == "postgresql" else [])
        for name in marker.args], indirect=True)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'switchboard.db'}"
    upgrade(url)
    return url


@pytest.fixture
def database_url(request):
    """The app's database: a migrated SQLite file, or (as asked by the `engines` marker) a
    fresh migrated PostgreSQL database of this test's own, dropped afterwards."""
    engine = getattr(request, "param", "sqlite")
    if engine == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    with fresh_pg_database("sb_engine") as url:
        yield url


@pytest.fixture
def make_app(database_url):
    """An app on `database_url` and the in-memory bus; no background loops."""
    from app import create_app

    def factory(**overrides):
        settings = Settings.of(database_url=database_url, redis_url=None, **overrides)
        return create_app(settings, background=False)
    return factory


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def services(app):
    return app.extensions["switchboard"]


@pytest.fixture
def events(app) -> Events:
    """Every event the app publishes from now on."""
    got = Events()
    app.extensions["switchboard"].bus.attach(got.append)
    return got


@pytest.fixture
def assigned(client, services):
    """A conversation of cust-1 assigned to agent-a."""
    from actions.routing import route_waiting
    make_agent(client, "agent-a")
    conv = open_conv(client, text="Where is my order?", metadata={"language": "en"})
    assert route_waiting(services.session) == [conv["id"]]
    return client.get(f"/api/v1/conversations/{conv['id']}", headers=h("cust-1")).get_json()


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


@pytest.fixture(scope="session")
def pg_template() -> str:
    """A migrated database that each `stack_env` copies (never connected to otherwise)."""
    with fresh_pg_database("sb_template") as url:
        yield url


@pytest.fixture
def stack_env(pg_template, redis_prefix) -> dict[str, str]:
    """Environment of the distributed mode for processes started by a test: a database and
    a Redis prefix of the test's own. The processes route, expire and sweep everything in
    their database, so another test's rows (a conversation left waiting, an agent online)
    must not be there."""
    with copied_pg_database(pg_template) as url:
        yield {"DATABASE_URL": url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": redis_prefix}


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> RedisCluster:
    """A Redis Cluster (three masters, a replica each) for the session's cluster variants."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["redis", "cluster"])
def bus_env(request, stack_env) -> dict[str, str]:
    """`stack_env` on one Redis, then on a Redis Cluster (REDIS_URL names it; Celery's
    broker stays on the one Redis, as it must)."""
    if request.param == "redis":
        yield stack_env
        return
    cluster = request.getfixturevalue("redis_cluster")
    yield {**stack_env, "REDIS_URL": cluster.url, "CELERY_BROKER_URL": REDIS_URL}


@pytest.fixture(params=["redis", "cluster"])
def any_redis_url(request) -> str:
    """REDIS_URL of the one Redis, then of the session's Redis Cluster; an app made on it
    needs `celery_broker_url=REDIS_URL` (Celery cannot use a cluster)."""
    return REDIS_URL if request.param == "redis" else request.getfixturevalue("redis_cluster").url


@pytest.fixture(params=BROKERS)
def broker_env(request, stack_env) -> dict[str, str]:
    """`stack_env` with Celery's broker: Redis (REDIS_URL's), then RabbitMQ in a vhost of its own."""
    if request.param == "redis":
        yield stack_env
        return
    with rabbitmq_vhost() as url:
        yield {**stack_env, "CELERY_BROKER_URL": url}


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
