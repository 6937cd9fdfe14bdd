"""What a carrier adapter is: `track(tracking_number, current_status)` and `parse(payload)`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class CarrierError(Exception):
    """The carrier could not answer (network, HTTP status, unreadable body)."""


@dataclass(frozen=True)
class TrackingResult:
    status: str | None                      # one of ORDER_STATUSES, or None when unknown
    location: dict[str, Any] | None = None
    estimated_delivery: str | None = None   # ISO 8601
    notes: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class Carrier(Protocol):
    name: str
    poll_seconds: int | None     # its own poll interval, or None for the default
    webhook_secret: str | None

    def track(self, tracking_number: str, current_status: str) -> TrackingResult: ...

    def parse(self, payload: dict[str, Any]) -> TrackingResult: ...

