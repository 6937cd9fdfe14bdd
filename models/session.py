"""Engines, sessions and the one rule of side effects: they run after commit.

`publish(...)` and `enqueue(...)` made inside a transaction are queued on the
session and run only once it commits; a rollback drops them (warehouse,
Zulip). Domain code calls `after_commit(session, fn, *args)`. Each effect runs
on its own: one that raises is logged and counted in /metrics
(`switchboard_after_commit_failures_total`), and the rest still run.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from prometheus_client import Counter
from sqlalchemy import create_engine, event
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

AFTER_COMMIT_FAILURES = Counter("switchboard_after_commit_failures_total",
                                "Effects run after a commit that raised (logged, others still ran)",
                                ["effect"])

_PENDING = "switchboard_after_commit"
_BATCHES = "switchboard_after_commit_batches"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            # WAL lets the web process read while the in-process worker writes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    idle_ping = kwargs.pop("idle_ping_seconds", IDLE_PING_SECONDS)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine, idle_ping)
    return engine


# A pooled connection unused this long is checked before it is handed out.
IDLE_PING_SECONDS = 2.0


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pessimistic disconnect handling, for connections that sat idle only.

    `pool_pre_ping` costs a round trip on every checkout, a tenth of a
    reservation's web CPU here. A connection in steady use has just proved it
    works; one that sat in the pool (through a database restart, say) is
    pinged, and a dead one is replaced before anyone gets it.
    """
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:  # noqa: ANN001
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, _proxy) -> None:  # noqa: ANN001
        last = record.info.get("checked_in_at")
        if last is None or time.monotonic() - last < idle_seconds:
            return
        try:
            dbapi_conn.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:  # noqa: BLE001 - any failure means: not this connection
            raise DisconnectionError(f"idle connection is gone: {exc}") from exc


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched.

    `Session.execute` is typed to return a `Result`, which has no `rowcount`;
    what it returns for such a statement is a `CursorResult`, which has.
    """
    return cast("CursorResult[Any]", result).rowcount


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def after_commit(session: Session, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run `fn(*args, **kwargs)` once `session` commits; never if it rolls back."""
    session.info.setdefault(_PENDING, []).append((fn, args, kwargs))


def after_commit_batch(session: Session, fn: Callable[[list[Any]], Any], item: Any) -> None:
    """Add `item` to the list that `fn` gets, in one call, once `session` commits.

    For effects that are cheaper together (one Redis round trip for every
    event of a transaction). The call takes the place of the first item among
    the other after-commit effects; a rollback drops it.
    """
    batches = session.info.setdefault(_BATCHES, {})
    items = batches.get(fn)
    if items is None:
        items = batches[fn] = []
        after_commit(session, fn, items)
    items.append(item)


def committed_effect(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run an effect of something already committed; a failure is logged and counted.

    The commit has happened: the caller gets its committed result whatever an
    effect does (a request that failed here would be retried and done twice),
    and one failing effect (Redis or the broker away) must not keep the others
    from running.
    """
    try:
        fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - see above; counted and logged
        name = getattr(fn, "__qualname__", repr(fn))
        AFTER_COMMIT_FAILURES.labels(name).inc()
        log.exception("after-commit effect %s failed", name)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    session.info.pop(_BATCHES, None)
    # A raise here would also leave the session half-committed (InvalidRequestError
    # on its next use): each effect runs guarded.
    for fn, args, kwargs in session.info.pop(_PENDING, []):
        committed_effect(fn, *args, **kwargs)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_BATCHES, None)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
