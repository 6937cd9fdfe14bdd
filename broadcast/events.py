"""Events as they travel: cursors, the JSON frame (encoded once), wire forms.

A cursor is the event's position in its topic, `"<ms>-<seq>"` like a Redis
stream id, followed by the epoch of the topic's history it belongs to:
`"1764000000000-0:5f0c2a9e"`. Both engines share one format and one ordering
within an epoch. An epoch is a generation of the history: when a topic's
history is lost (Redis restarted without persistence, a stream deleted, a
process of the embedded mode restarted) the next one has a new epoch, and a
cursor from another epoch is never answered as recovered (Centrifugo's
offset + epoch). `"0-0:<epoch>"` means "before the first event".
"""
from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from broadcast.wsframes import deflated_text_frame, text_header

# Bare "0-0" is what a client may write for "from the start of what you keep";
# every cursor the server issues names its epoch: "<ms>-<seq>:<epoch>".
BEFORE_FIRST = "0-0"
_CURSOR = re.compile(r"^(\d{1,20})-(\d{1,20})(?::([0-9a-z]{1,16}))?$")


class BadCursor(ValueError):
    pass


def parse_cursor(cursor: object) -> tuple[tuple[int, int], str | None]:
    """(position, epoch) of a cursor; the epoch is None for a bare "<ms>-<seq>".

    Raises BadCursor for anything malformed.
    """
    m = _CURSOR.match(cursor) if isinstance(cursor, str) else None
    if m is None:
        raise BadCursor(f"not a cursor: {str(cursor)[:80]!r}")
    return (int(m.group(1)), int(m.group(2))), m.group(3)


def cursor_key(cursor: str) -> tuple[int, int]:
    """Sortable position of a cursor within its epoch; raises BadCursor for anything malformed."""
    return parse_cursor(cursor)[0]


def make_cursor(position: str, epoch: str) -> str:
    """The public cursor of stream position `position` ("<ms>-<seq>") in `epoch`."""
    return f"{position}:{epoch}"


def recoverable(since: str, epoch: str, trimmed_to: tuple[int, int]) -> bool:
    """Whether every event of the topic after `since` is still kept.

    `epoch` is the topic's current history and `trimmed_to` the newest
    position trimmed from it. A cursor of another epoch is never recoverable:
    the history it points into is gone, whatever positions the new one holds.
    A bare "0-0" asks for the whole current history, kept only if nothing of
    it was trimmed; any other bare cursor names no history at all.
    """
    key, since_epoch = parse_cursor(since)
    if since_epoch is None:
        return key == (0, 0) and trimmed_to == (0, 0)
    return since_epoch == epoch and key >= trimmed_to


class BadStreamCursor(ValueError):
    pass


def encode_cursor(positions: dict[str, str]) -> str:
    """One cursor for every topic of an SSE or long-poll stream: topic -> event id, base64url."""
    raw = json.dumps(positions, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str]:
    """The positions of a stream cursor; BadStreamCursor for anything this server did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        positions = json.loads(raw)
        if not isinstance(positions, dict):
            raise ValueError
        for topic, eid in positions.items():
            if not isinstance(topic, str):
                raise ValueError
            cursor_key(eid)
        return positions
    except ValueError:
        raise BadStreamCursor("not a cursor issued by this server") from None


def advance(cursors: dict[str, str], ev: Event) -> bool:
    """Move a stream's cursors (topic -> id) past `ev`, or to its reset point; False for an
    ephemeral event, which moves nothing."""
    if ev.id is not None:
        cursors[ev.topic] = ev.id
    elif ev.reset_to is not None:
        cursors[ev.topic] = ev.data["cursor"]
    else:
        return False
    return True


def new_epoch() -> str:
    """A history's generation id: new whenever a topic's history starts again."""
    return secrets.token_hex(4)


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


@dataclass(eq=False)
class Event:
    """One published event. `frame` is the JSON text every transport sends."""

    topic: str
    name: str
    id: str | None
    frame: str
    ts: int = 0
    reset_to: tuple[int, int] | None = None   # `stream:reset`: where live delivery goes on from
    _key: tuple[int, int] | None = field(default=None, repr=False)
    _ws: bytes | None = field(default=None, repr=False)
    _ws_deflated: bytes | None = field(default=None, repr=False)

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
            self._ws = text_header(len(payload)) + payload
        return self._ws

    @property
    def ws_deflated(self) -> bytes:
        """The same frame deflated (permessage-deflate without context takeover): built
        once per event, for every subscriber that agreed to compression."""
        if self._ws_deflated is None:
            self._ws_deflated = deflated_text_frame(utf8(self.frame))
        return self._ws_deflated

    @property
    def data(self) -> Any:
        return json.loads(self.frame)["data"]

    @classmethod
    def build(cls, topic: str, name: str, id: str | None, ts: int, data: Any) -> Event:
        prefix, suffix = frame_parts(topic, name, ts, data)
        return cls(topic, name, id, prefix + (dumps(id) if id else "null") + suffix, ts)


def reset_event(topic: str, cursor: str, ts: int) -> Event:
    """`stream:reset`: the topic could not be recovered; live delivery goes on from `cursor`."""
    ev = Event.build(topic, "stream:reset", None, ts, {"topic": topic, "cursor": cursor})
    ev.reset_to = cursor_key(cursor)
    return ev
