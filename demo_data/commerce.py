"""Demo shop for `make run`: products with stock, and an order on the `simulated` carrier.

Idempotent: existing stock is left alone; a demo order that finished its
journey starts it again, so every start shows one moving along.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions import orders
from actions.chat import agents
from actions.inventory import stock
from actions.inventory.stock import LevelKey
from models import Customer, Order, Product, StockLevel

PRODUCTS = [("demo-tee", "Switchboard T-shirt", 25, 5), ("demo-mug", "Switchboard mug", 8, 3),
            ("demo-cap", "Switchboard cap", 3, 2)]
ORDER_ID, CUSTOMER = "demo-1001", "demo-customer"


@dataclass(frozen=True)
class Listing:
    """What the demo shop's own catalogue says of a product (Switchboard keeps only its stock)."""
    price: str
    art: str          # the card's colour scheme (static/ui/app.css)
    blurb: str


CATALOGUE = {
    "demo-tee": Listing("$25.00", "tee", "Soft organic cotton, printed with the switchboard mark."),
    "demo-mug": Listing("$14.00", "mug", "A 350 ml stoneware mug for the support desk."),
    "demo-cap": Listing("$19.00", "cap", "A six-panel cap. Only a few were made."),
}
UNLISTED = Listing("", "other", "")

# The demo's customers, as the shop's backend would describe them (PUT /customers/{id}).
CUSTOMERS = [("demo-customer", "Ada Lovelace", "en", True, Decimal("1840.00")),
             ("demo-customer-th", "Somsri Jaidee", "th", False, Decimal("96.50")),
             ("demo-guest", "Grace Hopper", "en", False, Decimal("0"))]


def seed(session: Session) -> None:
    for user_id, name, language, vip, value in CUSTOMERS:
        if session.get(Customer, user_id) is None:
            agents.put_customer(session, user_id, {"name": name, "language": language, "is_vip": vip,
                                                   "lifetime_value": value})
    for product_id, name, quantity, threshold in PRODUCTS:
        product = stock.ensure_product(session, product_id, threshold)
        product.name = name
        exists = session.scalar(select(StockLevel.id).where(StockLevel.product_id == product_id))
        if exists is None:
            stock.set_stock(session, LevelKey(product_id), quantity)
    order = session.get(Order, ORDER_ID)
    if order is not None and order.next_poll_at is None:
        session.delete(order)
        session.flush()
        order = None
    if order is None:
        orders.upsert_order(session, ORDER_ID, customer_id=CUSTOMER, status="confirmed",
                            carrier="simulated", tracking_number="SIM-1001")
    session.flush()
    assert session.get(Product, "demo-tee") is not None
