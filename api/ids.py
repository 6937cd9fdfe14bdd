"""Ids in paths and bodies (PROTOCOL.md section 2): 1 to 64 characters of [A-Za-z0-9_.:-].

Path parameters are typed by URL converters (`<id:cid>`, `<type_name:type>`):
a value that does not fit is 400 before the view runs, and the OpenAPI
document describes each parameter from its converter's own pattern, so the
two cannot drift apart.
"""
from __future__ import annotations

import re

from werkzeug.exceptions import BadRequest
from werkzeug.routing import BaseConverter

ID = r"^[A-Za-z0-9_.:-]{1,64}$"   # also a pydantic `pattern`
TYPE_NAME = r"^[a-z0-9_]{1,64}$"  # notification types
_ID = re.compile(ID)


class PathRefused(BadRequest):
    """A path parameter outside its pattern (answered as the contract's JSON error)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.sb_code = code


def is_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID.match(value))


class IdConverter(BaseConverter):
    """A path id; anything else in its place is 400 `invalid_id`."""

    regex = "[^/]+"   # taken whole, judged in to_python: a bad id is 400, not a missing route
    pattern = re.compile(ID)
    code, what = "invalid_id", "ids are 1-64 characters of [A-Za-z0-9_.:-]"

    def to_python(self, value: str) -> str:
        if not self.pattern.match(value):
            raise PathRefused(self.code, self.what)
        return value

    @classmethod
    def openapi(cls) -> dict:
        return {"type": "string", "pattern": cls.pattern.pattern, "minLength": 1, "maxLength": 64}


class TypeNameConverter(IdConverter):
    """A notification type's name: lowercase letters, digits and _."""

    pattern = re.compile(TYPE_NAME)
    code, what = "invalid_type", "types are 1-64 characters of [a-z0-9_]"


CONVERTERS = {"id": IdConverter, "type_name": TypeNameConverter}
