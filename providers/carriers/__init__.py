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

from providers.carriers.base import Carrier, CarrierError, TrackingResult
from providers.carriers.http_json import HttpJsonCarrier
from providers.carriers.simulated import SimulatedCarrier

__all__ = ["Carrier", "CarrierError", "TrackingResult", "registry"]


def registry(settings) -> dict[str, Carrier]:
    """Every configured carrier by name."""
    carriers: dict[str, Carrier] = {"simulated": SimulatedCarrier(settings.orders.simulated_poll_seconds)}
    if settings.orders.carriers_json:
        for name, conf in json.loads(settings.orders.carriers_json).items():
            carriers[name] = HttpJsonCarrier(name, conf)
    return carriers
