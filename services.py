"""The wiring: builds the process's parts and starts what runs in the background.

Built once per process: by the app factory in a web process, lazily in a
Celery worker process (after the fork), by fixtures in tests. Each part is
made elsewhere (the bus and hub in broadcast/, presence in realtime/, the
database in models/); this module only puts them together.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

import broadcast
import tasks
from actions import effects
from actions.chat.attachments import DatabaseStorage, Storages
from actions.presence import announce_many
from broadcast.bus import Bus, MemoryBus
from broadcast.hub import Hub
from broadcast.metrics import on_delivered
from broadcast.presence import MemoryPresence, RedisPresence
from broadcast.redis_bus import RedisBus
from broadcast.redis_client import AnyRedis
from broadcast.redis_client import connect as connect_redis
from broadcast.throttle import LocalThrottle, RedisThrottle
from models import User, make_engine, make_session_factory, session_scope, utcnow
from providers.s3_storage import S3Storage
from realtime.announcer import Announcer
from realtime.presence import Presence
from realtime.takeover import keep_alive
from settings import Settings

log = logging.getLogger(__name__)


_INSERT_USERS_PG = text(
    "INSERT INTO users (id, role, name, created_at) "
    "SELECT id, role, name, :at FROM unnest(CAST(:ids AS text[]), CAST(:roles AS text[]), "
    "CAST(:names AS text[])) AS u(id, role, name) ON CONFLICT (id) DO NOTHING")
_INSERT_USERS_SQLITE = sqlite_insert(User).on_conflict_do_nothing(index_elements=["id"])


class UserRegistry:
    """Creates the user row on first sight of a token's `sub` (PROTOCOL.md section 2).

    API calls create it before they go on (`ensure`); real-time connections,
    which may arrive by the thousand, queue it and one greenlet inserts what
    arrived within `LINGER` seconds in one statement (`ensure_later`).
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._seen: set[tuple[str, str]] = set()
        self._pending: dict[str, tuple[str, str | None]] = {}
        self._wakeup = threading.Event()
        self._flusher: threading.Thread | None = None

    def ensure(self, principal) -> None:
        key = (principal.id, principal.role)
        if key in self._seen:
            return
        with session_scope(self.sessions) as session:
            self._insert_missing(session, {principal.id: (principal.role, principal.name)})
            if principal.name:
                session.execute(update(User).where(User.id == principal.id,
                                                   User.name.is_distinct_from(principal.name))
                                .values(name=principal.name))
        self._remember(key)

    def ensure_later(self, principal) -> None:
        if (principal.id, principal.role) in self._seen:
            return
        self._pending[principal.id] = (principal.role, principal.name)
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name="user-rows", daemon=True)
            self._flusher.start()
        self._wakeup.set()

    LINGER = 0.25

    def _flush_loop(self) -> None:
        while True:
            self._wakeup.wait()
            time.sleep(self.LINGER)   # a burst's worth to one statement, not one each
            self._wakeup.clear()
            pending, self._pending = self._pending, {}
            try:
                with session_scope(self.sessions) as session:
                    self._insert_missing(session, pending)
            except Exception:  # noqa: BLE001 - the next API call creates the row anyway
                log.exception("creating %d user rows failed", len(pending))
                continue
            for user_id, (role, _name) in pending.items():
                self._remember((user_id, role))

    @staticmethod
    def _insert_missing(session: Session, users: dict[str, tuple[str, str | None]]) -> None:
        if not users:
            return
        now = utcnow()
        if session.get_bind().dialect.name == "postgresql":
            # One statement, four array parameters, whatever the batch's size: a
            # burst's thousands of rows as one execution, not one each.
            session.execute(_INSERT_USERS_PG, {
                "ids": list(users), "roles": [role for role, _ in users.values()],
                "names": [name for _, name in users.values()], "at": now})
            return
        session.execute(_INSERT_USERS_SQLITE, [{"id": uid, "role": role, "name": name, "created_at": now}
                                               for uid, (role, name) in users.items()])

    def _remember(self, key: tuple[str, str]) -> None:
        if len(self._seen) > 100_000:
            self._seen.clear()
        self._seen.add(key)



@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    bus: Bus
    users: UserRegistry
    presence: Presence | None = None
    hub: Hub | None = None
    redis: AnyRedis | None = None
    announcer: Announcer | None = None
    throttle: object = None   # at most once per interval per key (broadcast/throttle.py)
    engine: Engine | None = None
    autocommit_engine: Engine | None = None
    attachments: Storages = field(default_factory=lambda: Storages(DatabaseStorage()))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.sessions) as session:
            yield session

    @contextmanager
    def autocommit_connection(self) -> Iterator[Connection]:
        """A connection of the same pool whose statements commit one by one: no BEGIN and
        COMMIT round trips and no ORM session, for work that is one atomic statement."""
        assert self.autocommit_engine is not None
        with self.autocommit_engine.connect() as conn:
            yield conn

    @classmethod
    def build(cls, settings: Settings, bus: Bus | None = None) -> "Services":
        engine = make_engine(settings.database_url, **(
            {} if settings.database_url.startswith("sqlite") else
            {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}))
        sessions = make_session_factory(engine)
        client = connect_redis(settings.redis_url) if settings.redis_url else None
        if bus is None:
            bus = (RedisBus(settings.redis_url, settings.redis_prefix, settings.realtime.history_min_events,
                            settings.realtime.history_min_seconds, settings.realtime.history_idle_ttl_seconds)
                   if settings.redis_url else
                   MemoryBus(settings.realtime.history_min_events, settings.realtime.history_min_seconds))
        throttle = (RedisThrottle(client, settings.redis_prefix + "once:") if client is not None
                    else LocalThrottle())
        services = cls(settings=settings, sessions=sessions, bus=bus, engine=engine,
                       autocommit_engine=engine.execution_options(isolation_level="AUTOCOMMIT"),
                       users=UserRegistry(sessions), redis=client, throttle=throttle,
                       attachments=attachment_storages(settings))
        # The ports through which the domain and the tasks reach this process's parts.
        broadcast.use_bus(bus)
        effects.use_sender(tasks.send)
        tasks.configure(settings)
        _set_current(services)
        tasks.use_services(get_services)
        return services

    def start_hub(self) -> None:
        """The web process's side: the hub and presence (not for workers)."""
        self.hub = Hub(self.bus, on_delivered=on_delivered)
        store = (RedisPresence(self.redis, self.settings.redis_prefix, self.settings.realtime.presence_ttl_seconds)
                 if self.redis is not None else MemoryPresence())
        self.presence = Presence(store, self.announce, self.settings.realtime.max_connections_per_user)

    def announce(self, user_id: str, online: bool, role: str | None = None) -> None:
        """Publish a presence change: queued in a web process with its loops, else at once."""
        if self.announcer is not None:
            self.announcer.put(user_id, online, role)
            return
        with self.session() as session:
            announce_many(session, [(user_id, online)], self.settings.chat.agent_grace_seconds,
                          {user_id: role} if role else None)


def attachment_storages(settings: Settings) -> Storages:
    """Where attachments go (SB_ATTACHMENT_STORAGE), and S3 for reading when a bucket is set."""
    chosen = settings.chat.attachment_storage
    if chosen not in ("database", "s3"):
        raise RuntimeError(f"SB_ATTACHMENT_STORAGE must be database or s3, not {chosen!r}")
    database = DatabaseStorage()
    if chosen == "database" and not settings.chat.attachment_s3_bucket:
        return Storages(database)
    s3 = S3Storage(settings)
    return Storages(s3, {"database": database}) if chosen == "s3" else Storages(database, {"s3": s3})


_current: Services | None = None
_lock = threading.Lock()


def _set_current(services: Services) -> None:
    global _current
    _current = services


def current_services() -> Services:
    """The services of the app serving this request; outside one (a WebSocket command, a
    worker), this process's. Tests run several apps in one process, hence the app first."""
    from flask import current_app
    try:
        return current_app.extensions["switchboard"]
    except RuntimeError:
        return get_services()


def get_services() -> Services:
    """This process's services, built from the environment on first use (workers)."""
    if _current is None:
        with _lock:
            if _current is None:
                Services.build(Settings.from_env())
    assert _current is not None
    return _current


def start_loops(services: Services) -> None:
    """The web process's background work, each part next to what it keeps alive."""
    grace = services.settings.chat.agent_grace_seconds
    services.announcer = Announcer(
        services.session, lambda session, changes, roles: announce_many(session, changes, grace, roles))
    services.presence.run_upkeep(max(1.0, services.settings.realtime.presence_ttl_seconds / 3))
    keep_alive(services.hub, services.settings.realtime.heartbeat_seconds)
