"""What an operation that opens its own transactions needs of the wiring (services.Services)."""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session


class Database(Protocol):
    autocommit_engine: Engine | None   # the pool's engine, each statement committed by itself

    def session(self) -> AbstractContextManager[Session]:
        """One transaction: committed on success, rolled back on any exception."""

    def autocommit_connection(self) -> AbstractContextManager[Connection]:
        """A connection of the same pool in autocommit: for work that is one atomic statement."""
