"""The built-in `simulated` carrier: each poll moves the order one step along."""
from __future__ import annotations

from typing import Any

from providers.carriers.base import TrackingResult

ROUTE = ["pending", "confirmed", "processing", "shipped", "in_transit", "out_for_delivery",
         "delivered"]
PLACES = {
    "shipped": {"latitude": 13.7563, "longitude": 100.5018, "address": "Warehouse, Bangkok"},
    "in_transit": {"latitude": 13.3611, "longitude": 100.9847, "address": "Hub, Chonburi"},
    "out_for_delivery": {"latitude": 12.9236, "longitude": 100.8825, "address": "Depot, Pattaya"},
    "delivered": {"latitude": 12.9276, "longitude": 100.8771, "address": "Front door"},
}


class SimulatedCarrier:
    name = "simulated"
    webhook_secret: str | None = None

    def __init__(self, poll_seconds: int | None = None) -> None:
        self.poll_seconds = poll_seconds

    def track(self, tracking_number: str, current_status: str) -> TrackingResult:
        if current_status not in ROUTE or current_status == "delivered":
            return TrackingResult(status=current_status)
        nxt = ROUTE[ROUTE.index(current_status) + 1]
        return TrackingResult(status=nxt, location=PLACES.get(nxt),
                              notes=f"simulated: {nxt.replace('_', ' ')}")

    def parse(self, payload: dict[str, Any]) -> TrackingResult:
        return TrackingResult(status=payload.get("status"), location=payload.get("location"))
