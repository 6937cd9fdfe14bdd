"""Prometheus metrics of the real-time layer and the HTTP API (PROTOCOL.md section 8)."""
from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("switchboard_connections", "Open real-time connections", ["transport"])
EVENTS_PUBLISHED = Counter("switchboard_events_published_total", "Events published from this process",
                           ["event"])
EVENTS_DELIVERED = Counter("switchboard_events_delivered_total",
                           "Event deliveries to local connections")
DELIVERY_LATENCY = Histogram(
    "switchboard_delivery_latency_seconds", "Publish to local fan-out, per event",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
HTTP_LATENCY = Histogram("switchboard_http_request_seconds", "HTTP request latency",
                         ["method", "endpoint", "status"])
CLOSED = Counter("switchboard_connections_closed_total", "Connections closed by the server",
                 ["reason"])


def on_delivered(ev, count: int) -> None:
    """Hub callback: counted once per event, not per recipient (the hot path)."""
    if count:
        EVENTS_DELIVERED.inc(count)
        if ev.ts:
            DELIVERY_LATENCY.observe(max(0.0, time.time() - ev.ts / 1000))
