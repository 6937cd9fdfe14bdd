"""The one shape of a refused operation, whoever refuses it and however it is answered.

A refusal has an HTTP `status`, a snake_case `code`, a readable `message`,
`details` for the error body (omitted when empty) and `headers` (a
`Retry-After`). It is answered as the JSON error body of PROTOCOL.md section
2, by Flask (api/errors.py) or, for the streams served beneath Flask, by
realtime/takeover.py, and as a WebSocket failed ack or error frame
(realtime/ops.py). Domain code, the HTTP layer and the
connection layer raise it (or a subclass naming where it comes from).
"""
from __future__ import annotations

from typing import Any


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, *, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or None
        self.headers = headers or {}

    def body(self) -> dict:
        """The contract's error body: {"error": {"code", "message", "details"?}}."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}
