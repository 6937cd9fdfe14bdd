"""Column types shared by the mappings.

`UTCDateTime` is `DateTime(timezone=True)` that always hands back aware UTC
datetimes: PostgreSQL does this already, SQLite drops the offset on read, and
comparing an aware `utcnow()` with a naive value raises TypeError. Values are
converted to UTC before they are stored, so SQLite's string comparison in SQL
(`expires_at < :now`) stays correct.
"""
from __future__ import annotations

from datetime import UTC

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Autoincrementing 64-bit key; SQLite only autoincrements INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")



def one_of(column: str, values: tuple[str, ...]) -> str:
    """SQL text for a CHECK that `column` is one of `values` (plain strings, no native enums)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


__all__ = ["UTCDateTime", "BigIntPK", "one_of"]
