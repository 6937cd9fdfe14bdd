"""Commands a client may `emit` over WebSocket; the HTTP API calls the same handlers.

Each domain registers its commands (`message:send`, `user:typing`, ...) with
`@command("name")`; a handler takes the caller (Principal) and the event's
data and returns the ack's data, or raises CommandError.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from refusals import Refusal

Handler = Callable[[Any, dict], Any]
COMMANDS: dict[str, Handler] = {}


class CommandError(Refusal):
    """A refused `emit`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(status, code, message)


def command(name: str) -> Callable[[Handler], Handler]:
    def decorator(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        return fn
    return decorator


def run_command(me: Any, name: object, data: object) -> Any:
    if not isinstance(name, str) or name not in COMMANDS:
        raise CommandError("unknown_event", f"unknown event {str(name)[:80]!r}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CommandError("invalid_data", "data must be a JSON object")
    return COMMANDS[name](me, data)
