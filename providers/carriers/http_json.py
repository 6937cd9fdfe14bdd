"""A carrier with a JSON tracking endpoint: URL template and status mapping from configuration."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from providers.carriers.base import CarrierError, TrackingResult


class HttpJsonCarrier:
    def __init__(self, name: str, conf: dict[str, Any]) -> None:
        self.name = name
        self.url = conf["url"]
        self.status_field = conf.get("status_field", "status")
        self.status_map: dict[str, str] = conf.get("status_map", {})
        self.location_field = conf.get("location_field", "location")
        self.eta_field = conf.get("eta_field", "estimated_delivery")
        self.notes_field = conf.get("notes_field", "notes")
        self.headers: dict[str, str] = conf.get("headers", {})
        self.timeout = float(conf.get("timeout", 10))
        self.poll_seconds = conf.get("poll_seconds")
        self.webhook_secret: str | None = conf.get("webhook_secret")

    @staticmethod
    def _field(payload: dict[str, Any], path: str) -> Any:
        """A dotted path into the JSON body (`tracking.status`)."""
        value: Any = payload
        for part in path.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    def parse(self, payload: dict[str, Any]) -> TrackingResult:
        raw = self._field(payload, self.status_field)
        status = self.status_map.get(str(raw), raw if raw in _KNOWN else None)
        location = self._field(payload, self.location_field)
        eta = self._field(payload, self.eta_field)
        notes = self._field(payload, self.notes_field)
        return TrackingResult(status=status, location=location if isinstance(location, dict) else None,
                              estimated_delivery=eta if isinstance(eta, str) else None,
                              notes=notes if isinstance(notes, str) else None, raw=payload)

    def track(self, tracking_number: str, current_status: str) -> TrackingResult:
        url = self.url.format(tracking_number=quote(tracking_number, safe=""))
        try:
            res = requests.get(url, headers=self.headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise CarrierError(f"{self.name}: {exc}") from exc
        if res.status_code != 200:
            raise CarrierError(f"{self.name}: HTTP {res.status_code}")
        try:
            payload = res.json()
        except ValueError as exc:
            raise CarrierError(f"{self.name}: body is not JSON") from exc
        if not isinstance(payload, dict):
            raise CarrierError(f"{self.name}: body is not a JSON object")
        return self.parse(payload)


from models.orders import ORDER_STATUSES as _KNOWN  # noqa: E402
