"""The one refusal of the chat actions; the HTTP layer and the WebSocket commands answer it."""
from __future__ import annotations

from actions.errors import DomainError


class ChatError(DomainError):
    """A refused chat operation."""
