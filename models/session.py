"""Engines, sessions and the one rule of side effects: they run after commit.

`publish(...)` and `enqueue(...)` made inside a transaction are queued on the
session and run only once it commits; a rollback drops them (warehouse,
Zulip). Domain code calls `after_commit(session, fn, *args)`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

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
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


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


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    session.info.pop(_BATCHES, None)
    pending = session.info.pop(_PENDING, [])
    for fn, args, kwargs in pending:
        fn(*args, **kwargs)


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
