"""Demo shop for `make run`: products with stock, and an order on the `simulated` carrier.

Idempotent: existing stock is left alone; a demo order that finished its
journey starts it again, so every start shows one moving along.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions import orders
from actions.inventory import stock
from actions.inventory.stock import LevelKey
from models import Order, Product, StockLevel

PRODUCTS = [("demo-tee", "Switchboard T-shirt", 25, 5), ("demo-mug", "Switchboard mug", 8, 3),
            ("demo-cap", "Switchboard cap", 3, 2)]
ORDER_ID, CUSTOMER = "demo-1001", "demo-customer"


def seed(session: Session) -> None:
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
