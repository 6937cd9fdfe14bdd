"""The demo shop's pages: the catalogue, product pages (live stock, reserve, the chat
widget), the shopper's orders with their live timeline, and the operations dashboard.

Pages sign in through the development token endpoint (`?sub=` picks the shopper,
remembered by the browser), so they exist where that endpoint does (not in production).
"""
from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request
from sqlalchemy import select

from actions.inventory import stock
from api.ids import is_id
from demo_data.commerce import CATALOGUE, UNLISTED
from models import Product
from services import current_services

bp = Blueprint("shop_pages", __name__, url_prefix="/shop")


def _id(value: str) -> str:
    if not is_id(value):
        abort(404)
    return value


def _card(session, product: Product) -> dict:
    view = stock.stock_view(session, product.id) or {"variants": []}
    whole = next((v for v in view["variants"] if not v.get("variant_id")), None) or \
        (view["variants"][0] if view["variants"] else {"available_quantity": 0})
    listing = CATALOGUE.get(product.id, UNLISTED)
    return {"id": product.id, "name": product.name or product.id, "price": listing.price, "art": listing.art,
            "blurb": listing.blurb, "available": whole["available_quantity"],
            "low": product.low_stock_threshold, "initial": (product.name or product.id)[:1].upper()}


@bp.get("/")
def catalogue():
    """The catalogue: every product with its live stock."""
    with current_services().session() as session:
        products = session.scalars(select(Product).order_by(Product.name, Product.id).limit(60)).all()
        cards = [_card(session, p) for p in products]
    return render_template("shop/catalogue.html", cards=cards, section="shop")


@bp.get("/products/<id:product_id>")
def product_page(product_id: str):
    """Product page: live stock, a reserve button with a countdown, the chat widget."""
    with current_services().session() as session:
        product = session.get(Product, _id(product_id))
        card = _card(session, product) if product is not None else None
    if card is None:
        abort(404)
    return render_template("shop/product.html", card=card, product_id=product_id, section="shop")


@bp.get("/orders")
def orders_page():
    """The shopper's orders, each linked to its live timeline."""
    return render_template("shop/orders.html", section="orders")


@bp.get("/orders/<id:order_id>")
def order_page(order_id: str):
    """Order tracking page: the live status timeline (the shopper's own, or any for ?role=admin)."""
    return render_template("shop/order.html", order_id=_id(order_id), section="orders")


@bp.get("/admin")
def admin_page():
    """Operations dashboard: charts, live orders, stock, agents."""
    return render_template("shop/admin.html", section="ops")


def shop_redirect():
    """The old widget demo (`/chat/shop?customer=`) is the shop now."""
    customer = request.args.get("customer", "")
    return redirect("/shop/" + (f"?sub={customer}" if is_id(customer) else ""))
