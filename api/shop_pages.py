"""The shop's demo pages: product (live stock, reserve), order tracking, operations dashboard.

Pages sign in through the development token endpoint (`?sub=&role=`), so
they exist where that endpoint does (not in production).
"""
from __future__ import annotations


from flask import Blueprint, abort, current_app, render_template

from api.ids import is_id

from models import Product

bp = Blueprint("shop_pages", __name__, url_prefix="/shop")


def _id(value: str) -> str:
    if not is_id(value):
        abort(404)
    return value


@bp.get("/")
def index():
    """The demo shop's first product."""
    from flask import redirect
    return redirect("/shop/products/demo-tee")


@bp.get("/products/<id:product_id>")
def product_page(product_id: str):
    """Product page: live stock and a reserve button with a countdown."""
    with current_app.extensions["switchboard"].session() as session:
        product = session.get(Product, _id(product_id))
        name = (product.name if product and product.name else product_id)
    return render_template("shop/product.html", product_id=product_id, product_name=name)


@bp.get("/orders/<id:order_id>")
def order_page(order_id: str):
    """Order tracking page: the live status timeline (?sub=<customer id>)."""
    return render_template("shop/order.html", order_id=_id(order_id))


@bp.get("/admin")
def admin_page():
    """Operations dashboard: live orders, inventory alerts, figures."""
    return render_template("shop/admin.html")
