"""JSON text as PROTOCOL.md section 2 accepts it, for HTTP bodies and WebSocket frames alike.

The standard library parses more than the contract allows: nesting until
the interpreter's recursion limit (then `RecursionError`, a 500), `\\ud83d`
escapes that decode to a lone surrogate, a string that no UTF-8 encoder can
write back (the reply that echoes it fails, and so does whoever stores it),
`\\u0000`, which PostgreSQL cannot store, and NaN or 1e999, which no JSON
encoder writes back. `loads` refuses each with a `JsonRefused` that names
what was wrong.

Both checks are skipped when the text cannot contain the problem: fewer
brackets than the depth limit, no surrogate escape. So the common small body
pays two `str.count`s and one search, not a walk over what was parsed.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64

# A `\u` escape of a UTF-16 surrogate (D800-DFFF), or of NUL: paired surrogates
# decode to one character and pass the walk, lone ones do not; NUL is refused
# because PostgreSQL stores no text that holds it (a body would pass here
# and fail at the database, a 500).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")


class JsonRefused(ValueError):
    """Text that is not JSON the contract accepts; `code` is the error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `text` (UTF-8 when bytes); JsonRefused for anything the contract refuses."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("invalid_json", "the body is not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except JsonRefused:
        raise
    except ValueError as exc:
        raise JsonRefused("invalid_json", f"not JSON: {exc}") from None
    deep = text.count("[") + text.count("{") > max_depth
    if deep or _SUSPECT_ESCAPE.search(text):
        _check(value, max_depth)
    return value


def _refuse_constant(name: str) -> Any:
    raise JsonRefused("invalid_json", f"{name} is not JSON")


def _finite_float(text: str) -> float | int:
    value = float(text)
    if value in (_INF, -_INF):
        # 1e999: valid JSON text, but no JSON encoder can write the float back.
        raise JsonRefused("invalid_json", f"the number {text[:40]} is out of range")
    # JSON has one number type: 4.0 is the integer 4 (as JSON Schema's "integer" says).
    return int(value) if value.is_integer() else value


_INF = float("inf")


def _too_deep(max_depth: int) -> JsonRefused:
    return JsonRefused("too_deep", f"JSON may nest at most {max_depth} levels")


def _check_string(value: str) -> None:
    if "\x00" in value:
        raise JsonRefused("invalid_string", "strings may not hold NUL (\\u0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonRefused("invalid_string",
                              "strings may not hold a lone surrogate (\\ud800-\\udfff)") from None


def _check(value: Any, max_depth: int) -> None:
    """Depth and strings of a parsed value, without recursion (the value may be deep)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, (dict, list)):
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth)
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(key)
                    stack.append((child, depth))
            else:
                stack.extend((child, depth) for child in item)
