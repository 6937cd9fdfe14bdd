"""The one error type of the chat actions; the HTTP layer and the WebSocket commands map it."""
from __future__ import annotations


class ChatError(Exception):
    """A refused chat operation: HTTP `status`, snake_case `code`, readable `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
