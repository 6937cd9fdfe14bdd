"""Ids in paths and bodies (PROTOCOL.md section 2): 1 to 64 characters of [A-Za-z0-9_.:-]."""
from __future__ import annotations

import re

from api.errors import ApiError

ID = r"^[A-Za-z0-9_.:-]{1,64}$"   # also a pydantic `pattern`
_ID = re.compile(ID)


def is_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID.match(value))


def check_id(value: str, what: str = "id") -> str:
    """`value`, or a 400 `invalid_id`."""
    if not is_id(value):
        raise ApiError(400, "invalid_id", f"{what} must be 1-64 characters of [A-Za-z0-9_.:-]")
    return value
