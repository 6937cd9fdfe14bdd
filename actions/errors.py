"""The one shape of a refused operation; the HTTP layer maps it once (api/errors.py)."""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused operation: HTTP `status`, snake_case `code`, readable `message`, and
    `details` for the error body (omitted when empty)."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
