"""Carrier adapters behind one interface: `track(tracking_number, current_status)`.

`simulated` moves an order along by itself (the demo); `HttpJsonCarrier` is
any carrier with a JSON tracking URL, configured by `SB_CARRIERS_JSON`:

    {"acme": {"url": "https://api.acme.example/track/{tracking_number}",
              "status_field": "status", "status_map": {"IN_TRANSIT": "in_transit", ...},
              "location_field": "location", "eta_field": "eta", "notes_field": "message",
              "headers": {"Authorization": "Bearer ..."}, "timeout": 10,
              "webhook_secret": "..."}}
"""
from __future__ import annotations

import json
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


def registry(settings) -> dict[str, Carrier]:
    """Every configured carrier by name."""
    from providers.carriers.http_json import HttpJsonCarrier
    from providers.carriers.simulated import SimulatedCarrier
    carriers: dict[str, Carrier] = {"simulated": SimulatedCarrier(settings.simulated_poll_seconds)}
    if settings.carriers_json:
        for name, conf in json.loads(settings.carriers_json).items():
            carriers[name] = HttpJsonCarrier(name, conf)
    return carriers
