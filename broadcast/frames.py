"""What a client may send over `/ws` (PROTOCOL.md section 3), checked in one place.

`parse_op` turns a text frame into an `Op` or raises `FrameError` with the
code to answer with: every wrong shape of every op has its own code, and
none of them ends the connection. The `ref` is checked first, so a failed
ack can always echo it; a frame whose `ref` cannot be echoed gets an error
frame instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broadcast import jsontext

MAX_REF_CHARS = 128

# op -> {field: (required, accepted types, code, what it must be)}
_FIELDS: dict[str, dict[str, tuple[bool, tuple[type, ...], str, str]]] = {
    "subscribe": {"topic": (True, (str,), "invalid_topic", "a topic string"),
                  "since": (False, (str,), "invalid_cursor", "a cursor string")},
    "unsubscribe": {"topic": (True, (str,), "invalid_topic", "a topic string")},
    "emit": {"event": (True, (str,), "invalid_event", "an event name"),
             "data": (False, (dict,), "invalid_data", "a JSON object")},
    "ping": {},
    "refresh": {"token": (True, (str,), "invalid_token", "a JWT string")},
}
OPS = tuple(_FIELDS)


class FrameError(Exception):
    def __init__(self, code: str, message: str, ref: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.ref = code, message, ref


@dataclass(frozen=True, slots=True)
class Op:
    op: str
    ref: str | int | None
    fields: dict[str, Any]

    def get(self, name: str) -> Any:
        return self.fields.get(name)


def _check_ref(ref: Any) -> str | int | None:
    if ref is None:
        return None
    if isinstance(ref, bool) or not isinstance(ref, (str, int)):
        raise FrameError("invalid_ref", "ref must be a string or an integer")
    if isinstance(ref, str) and len(ref) > MAX_REF_CHARS:
        raise FrameError("invalid_ref", f"ref may hold at most {MAX_REF_CHARS} characters")
    if isinstance(ref, int) and abs(ref) >= 1 << 53:
        raise FrameError("invalid_ref", "an integer ref must fit a JavaScript number exactly")
    return ref


def parse_op(text: str) -> Op:
    """The op of a client's text frame; FrameError (with the `ref` when it has one) otherwise."""
    try:
        msg = jsontext.loads(text)
    except jsontext.JsonRefused as exc:
        raise FrameError(exc.code, exc.message) from None
    if not isinstance(msg, dict):
        raise FrameError("invalid_frame", "frames must be JSON objects")
    ref = _check_ref(msg.get("ref"))
    name = msg.get("op")
    if not isinstance(name, str):
        raise FrameError("invalid_op", f"op must be one of {', '.join(OPS)}", ref)
    spec = _FIELDS.get(name)
    if spec is None:
        raise FrameError("unknown_op", f"unknown op {name[:40]!r}", ref)
    fields: dict[str, Any] = {}
    for field, (required, types, code, what) in spec.items():
        value = msg.get(field)
        if value is None:
            if required:
                raise FrameError(code, f"{name} needs {field}: {what}", ref)
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise FrameError(code, f"{field} must be {what}", ref)
        fields[field] = value
    return Op(name, ref, fields)
