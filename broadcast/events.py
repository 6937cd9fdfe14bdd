"""Events as they travel: cursors, the JSON frame (encoded once), wire forms.

A cursor is the event's position in its topic, `"<ms>-<seq>"` like a Redis
stream id, so both engines share one format and one ordering. `"0-0"` means
"before the first event" and is valid as `since`.
"""
from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

BEFORE_FIRST = "0-0"
_CURSOR = re.compile(r"^\d{1,20}-\d{1,20}$")


class BadCursor(ValueError):
    pass


def cursor_key(cursor: str) -> tuple[int, int]:
    """Sortable form of a cursor; raises BadCursor for anything malformed."""
    if not isinstance(cursor, str) or not _CURSOR.match(cursor):
        raise BadCursor(f"not a cursor: {cursor!r}")
    ms, seq = cursor.split("-")
    return int(ms), int(seq)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def frame_parts(topic: str, event: str, ts: int, data: Any) -> tuple[str, str]:
    """The frame split around its id, so the id can be filled in where it is made.

    The Redis engine assigns ids inside a Lua script; it joins
    prefix + id + suffix there and the frame is never encoded again.
    """
    prefix = '{"event":' + dumps(event) + ',"topic":' + dumps(topic) + ',"id":'
    suffix = ',"ts":' + str(int(ts)) + ',"data":' + dumps(data) + "}"
    return prefix, suffix


def utf8(text: str) -> bytes:
    """`text` as UTF-8; a lone surrogate (nothing can encode it) as its JSON escape.

    Input is refused with lone surrogates (broadcast/jsontext.py), so this is
    for what might still hold one: the frame being written must never fail.
    Only inside a JSON string can such a character stand, where the escape
    backslashreplace writes (\\udXXX) is the same character in JSON.
    """
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def ws_text_header(length: int) -> bytes:
    """RFC 6455 header of an unmasked, final text frame (server to client)."""
    if length < 126:
        return struct.pack("!BB", 0x81, length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


@dataclass(eq=False)
class Event:
    """One published event. `frame` is the JSON text every transport sends."""

    topic: str
    name: str
    id: str | None
    frame: str
    ts: int = 0
    _key: tuple[int, int] | None = field(default=None, repr=False)
    _ws: bytes | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[int, int] | None:
        if self.id is None:
            return None
        if self._key is None:
            self._key = cursor_key(self.id)
        return self._key

    @property
    def ws_bytes(self) -> bytes:
        """The WebSocket frame, built once per event and written to every socket."""
        if self._ws is None:
            payload = utf8(self.frame)
            self._ws = ws_text_header(len(payload)) + payload
        return self._ws

    @property
    def data(self) -> Any:
        return json.loads(self.frame)["data"]

    @classmethod
    def build(cls, topic: str, name: str, id: str | None, ts: int, data: Any) -> "Event":
        prefix, suffix = frame_parts(topic, name, ts, data)
        return cls(topic, name, id, prefix + (dumps(id) if id else "null") + suffix, ts)
