"""The one error type of the chat actions; the HTTP layer and the WebSocket commands map it."""
from __future__ import annotations

from actions.errors import DomainError


class ChatError(DomainError):
    """A refused chat operation."""
