"""HTTP API for orders and carrier webhooks (PROTOCOL.md section 6).

Thin: parse, authorise, call actions.orders / actions.tracking.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, request
from pydantic import BaseModel, Field

from actions import customers, orders, tracking
from api.auth import require
from api.errors import ApiError
from api.ids import ID
from api.openapi import body, json_value, query, responds
from api.stats import stats_section
from models import Order
from providers.carriers import registry
from services import current_services

bp = Blueprint("orders", __name__, url_prefix="/api/v1")

Status = Literal["pending", "confirmed", "processing", "shipped", "in_transit", "out_for_delivery",
                 "delivered", "cancelled", "returned", "failed_delivery"]


class OrderIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=64, pattern=ID)
    status: Status = "pending"
    carrier: str | None = Field(default=None, max_length=64, pattern=ID)
    tracking_number: str | None = Field(default=None, max_length=128)


class Location(BaseModel):
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=500)


class OrderStatusIn(BaseModel):
    status: Status
    location: Location | None = None
    estimated_delivery: datetime | None = None
    tracking_number: str | None = Field(default=None, max_length=128)
    notes: str | None = Field(default=None, max_length=2000)


class HistoryItem(BaseModel):
    previous_status: str | None
    status: str
    location: dict | None
    notes: str | None
    timestamp: str


class OrderOut(BaseModel):
    id: str
    customer_id: str
    status: str
    carrier: str | None
    tracking_number: str | None
    history: list[HistoryItem] = []


@bp.put("/orders/<id:order_id>")
@require("service", "admin")
@body(OrderIn)
@responds(200, OrderOut, "updated")
@responds(201, OrderOut, "created")
@responds(409, None, "a status change the lifecycle forbids")
def put_order(order_id: str, me, payload: OrderIn):
    """Create or update an order."""
    with current_services().session() as session:
        order, created = orders.upsert_order(
            session, order_id, customer_id=payload.customer_id,
            status=payload.status, carrier=payload.carrier,
            tracking_number=payload.tracking_number)
        session.flush()
        session.refresh(order)
        out = orders.order_json(order)
    return out, 201 if created else 200


@bp.post("/orders/<id:order_id>/status")
@require("service", "admin")
@body(OrderStatusIn)
@responds(200, OrderOut, "the order after the change")
@responds(409, None, "a transition the lifecycle forbids")
def post_status(order_id: str, me, payload: OrderStatusIn):
    """Change an order's status (broadcast, notification, history)."""
    with current_services().session() as session:
        order = orders.change_status(
            session, order_id, payload.status,
            location=payload.location.model_dump(exclude_none=True) if payload.location else None,
            estimated_delivery=payload.estimated_delivery,
            tracking_number=payload.tracking_number, notes=payload.notes, source="api")
        session.flush()
        session.refresh(order)
        return orders.order_json(order)


class OrderListParams(BaseModel):
    customer_id: str | None = Field(default=None, max_length=64, pattern=ID)
    status: Status | None = None
    limit: int = Field(default=50, ge=1, le=200)


class CustomerSummary(BaseModel):
    name: str | None
    is_vip: bool
    language: str | None


class OrderListItem(OrderOut):
    customer: CustomerSummary | None = None


class OrderList(BaseModel):
    orders: list[OrderListItem]


@bp.get("/orders")
@require()
@query(OrderListParams)
@responds(200, OrderList, "newest first, without their history")
@responds(403, None, "a customer asking for another customer's orders")
def list_orders(me, params: OrderListParams):
    """Orders, newest first: a customer's own; any (or one customer's) for admin and service."""
    customer_id = params.customer_id
    if me.role in ("customer", "agent"):
        if customer_id not in (None, me.id):
            raise ApiError(403, "forbidden", "only your own orders (agents: GET /customers/{id})")
        customer_id = me.id
    with current_services().session() as session:
        found = orders.list_orders(session, customer_id=customer_id, status=params.status, limit=params.limit)
        people = customers.summaries(session, {o["customer_id"] for o in found})
        return {"orders": [o | {"customer": people.get(o["customer_id"])} for o in found]}


@bp.get("/orders/<id:order_id>")
@require()
@responds(200, OrderOut, "the order with its status history")
def get_order(order_id: str, me):
    """One order with its history (its customer, admin, the store's backend)."""
    with current_services().session() as session:
        order = session.get(Order, order_id)
        if order is None or (me.role not in ("admin", "service") and order.customer_id != me.id):
            raise ApiError(404, "not_found", f"no order {order_id}")
        return orders.order_json(order)


@bp.post("/carriers/<carrier>/webhook")
@responds(200, None, "applied (or ignored when not a move the lifecycle allows)")
def carrier_webhook(carrier: str):
    """Tracking data pushed by a carrier, signed `X-Switchboard-Signature: sha256=<HMAC of the body>`."""
    services = current_services()
    adapter = registry(services.settings).get(carrier)
    if adapter is None or not adapter.webhook_secret:
        raise ApiError(404, "not_found", f"no carrier {carrier} taking webhooks")
    raw = request.get_data(cache=True)
    if not tracking.verify_signature(adapter.webhook_secret, raw,
                                     request.headers.get("X-Switchboard-Signature")):
        raise ApiError(401, "invalid_signature", "the webhook signature does not match")
    payload = json_value(raw)
    number = payload.get("tracking_number") if isinstance(payload, dict) else None
    if not isinstance(number, str) or not number:
        raise ApiError(400, "validation_error", "tracking_number is required")
    with services.session() as session:
        return tracking.webhook(session, carrier, number, adapter.parse(payload))


@stats_section("orders")
def _order_stats(session) -> dict:
    return orders.order_stats(session)
