"""Refusals of the domain: `DomainError(status, code, message, **details)` (refusals.py)."""
from __future__ import annotations

from typing import Any

from refusals import Refusal


class DomainError(Refusal):
    """A refused operation; keyword arguments become the error body's `details`."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(status, code, message, details=details)
