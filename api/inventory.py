"""HTTP API for inventory and reservations (PROTOCOL.md section 7).

Thin: parse, authorise, call actions/inventory/.
"""
from __future__ import annotations

from typing import Literal

from flask import Blueprint, request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from actions.inventory import batch, reservations
from actions.inventory import stock
from actions.inventory.stock import LevelKey
from api.auth import require
from api.errors import ApiError
from api.ids import ID
from api.openapi import body, responds
from api.stats import stats_section
from models import Product, Reservation, StockLevel, utcnow
from services import current_services

bp = Blueprint("inventory", __name__, url_prefix="/api/v1")

class StockIn(BaseModel):
    variant_id: str | None = Field(default=None, max_length=64, pattern=ID)
    location: str | None = Field(default=None, max_length=64, pattern=ID)
    quantity: int = Field(ge=0, le=10**9)
    low_stock_threshold: int | None = Field(default=None, ge=0, le=10**9)


class AdjustIn(BaseModel):
    variant_id: str | None = Field(default=None, max_length=64, pattern=ID)
    location: str | None = Field(default=None, max_length=64, pattern=ID)
    delta: int = Field(ge=-10**9, le=10**9)
    change_type: Literal["sale", "restock", "adjustment"]


class LevelOut(BaseModel):
    product_id: str
    variant_id: str | None
    location: str
    on_hand: int
    held: int
    available_quantity: int


class VariantStock(BaseModel):
    variant_id: str | None
    available_quantity: int
    is_in_stock: bool


class StockOut(BaseModel):
    product_id: str
    variants: list[VariantStock]


class ReserveIn(BaseModel):
    product_id: str = Field(min_length=1, max_length=64, pattern=ID)
    variant_id: str | None = Field(default=None, max_length=64, pattern=ID)
    quantity: int = Field(ge=1, le=10**6)
    customer_id: str | None = Field(default=None, max_length=64, pattern=ID)


class ReservationOut(BaseModel):
    reservation_id: str
    expires_at: str
    product_id: str
    variant_id: str | None
    quantity: int
    status: str


def _key(product_id: str, variant_id: str | None, location: str | None) -> LevelKey:
    return LevelKey(product_id, variant_id or "", location or stock.DEFAULT_LOCATION)


@bp.put("/products/<id:product_id>/stock")
@require("service", "admin")
@body(StockIn)
@responds(200, LevelOut, "the stock level after the change")
@responds(409, description="below the units held by reservations")
def set_stock(product_id: str, me, payload: StockIn):
    """Set on-hand stock of a product (variant, location)."""
    with current_services().session() as session:
        return stock.set_stock(session, _key(product_id, payload.variant_id, payload.location),
                                   payload.quantity, payload.low_stock_threshold)


@bp.post("/products/<id:product_id>/stock/adjust")
@require("service", "admin")
@body(AdjustIn)
@responds(200, LevelOut, "the stock level after the change")
@responds(409, description="more than the free units taken, or past 10^9 units on hand")
def adjust_stock(product_id: str, me, payload: AdjustIn):
    """Adjust on-hand stock by a delta (sale, restock, adjustment)."""
    with current_services().session() as session:
        return stock.adjust_stock(session, _key(product_id, payload.variant_id, payload.location),
                                      payload.delta, payload.change_type)


@bp.get("/stock")
@require("service", "admin")
@responds(200, description="{levels: [{product_id, product_name, variant_id, location, on_hand, held, "
                           "available, low_stock_threshold}]}")
def stock_levels(me):
    """Every stock level (the operations dashboard's table)."""
    with current_services().session() as session:
        return {"levels": stock.stock_table(session)}


@bp.get("/products/<id:product_id>/stock")
@require()
@responds(200, StockOut, "available stock per variant (on hand minus unexpired holds)")
def get_stock(product_id: str, me):
    """Available stock of a product per variant."""
    with current_services().session() as session:
        view = stock.stock_view(session, product_id)
    if view is None:
        raise ApiError(404, "not_found", f"no product {product_id}")
    return view


@bp.post("/reservations")
@require("customer", "service", "admin")
@body(ReserveIn)
@responds(404, description="no such product (or variant)")
@responds(201, ReservationOut, "held; repeating an Idempotency-Key answers 200 with the first")
@responds(409, None, "out_of_stock")
def create_reservation(me, payload: ReserveIn):
    """Hold stock for a checkout (15 minutes by default)."""
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > 255:
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key is at most 255 characters")
    if me.role == "customer":
        if payload.customer_id not in (None, me.id):
            raise ApiError(403, "forbidden", "a customer reserves for themselves")
        customer_id = me.id
    else:
        customer_id = payload.customer_id
    services = current_services()
    r, created = batch.hold_together(
        services, product_id=payload.product_id, variant_id=payload.variant_id,
        quantity=payload.quantity, owner_id=me.id, customer_id=customer_id,
        ttl_seconds=services.settings.inventory.reservation_ttl_seconds, idempotency_key=key)
    return reservations.reservation_json(r), 201 if created else 200


def _act(reservation_id: str, me, fn):
    with current_services().session() as session:
        r = session.get(reservations.Reservation, reservation_id)
        if r is None:
            raise ApiError(404, "not_found", f"no reservation {reservation_id}")
        if not reservations.can_act(r, me.id, me.role):
            raise ApiError(403, "forbidden", "not your reservation")
        return reservations.reservation_json(fn(session, reservation_id))


@bp.post("/reservations/<id:reservation_id>/commit")
@require("customer", "service", "admin")
@responds(200, ReservationOut, "committed")
@responds(409, None, "expired or released")
def commit_reservation(reservation_id: str, me):
    """Turn a hold into a sale."""
    return _act(reservation_id, me, reservations.commit)


@bp.delete("/reservations/<id:reservation_id>")
@require("customer", "service", "admin")
@responds(200, ReservationOut, "released")
@responds(409, None, "already committed")
def release_reservation(reservation_id: str, me):
    """Release a hold."""
    return _act(reservation_id, me, reservations.release)


@bp.get("/reservations/<id:reservation_id>")
@require("customer", "service", "admin")
@responds(200, ReservationOut, "one reservation (held, committed or expired)")
@responds(404, description="no such reservation, or it was released (DELETE)")
def get_reservation(reservation_id: str, me):
    """One reservation; a released one is gone."""
    def held_or_done(session, rid: str):
        r = session.get(reservations.Reservation, rid)
        if r.status == "released":
            raise ApiError(404, "released", f"reservation {rid} was released")
        return r
    return _act(reservation_id, me, held_or_done)


@stats_section("inventory")
def _inventory_stats(session) -> dict:
    now = utcnow()
    low = session.scalar(select(func.count()).select_from(StockLevel).join(
        Product, Product.id == StockLevel.product_id).where(StockLevel.low_stock_alerted.is_(True)))
    holds = session.scalar(select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
        Reservation.status == "held", Reservation.expires_at > now))
    return {"low_stock_levels": low or 0, "units_held": holds or 0,
            "products": session.scalar(select(func.count()).select_from(Product)) or 0}
