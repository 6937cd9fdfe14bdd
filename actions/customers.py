"""What the staff see of one customer beside a chat: the store's profile, orders, holds."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.chat.access import OPEN
from actions.chat.agents import customer_json
from actions.errors import DomainError
from actions.inventory.reservations import reservation_json
from actions.orders import list_orders
from models import Conversation, Customer, Product, Reservation, User, utcnow


class CustomerError(DomainError):
    """A customer the caller may not see, or one nobody knows."""


def may_see(session: Session, me: Any, customer_id: str) -> bool:
    """Admins and the store's backend see everyone, a customer themself, an agent the
    customers they serve (an open conversation of theirs is assigned to them or waiting)."""
    if me.role in ("admin", "service") or (me.role == "customer" and me.id == customer_id):
        return True
    if me.role != "agent":
        return False
    return session.scalar(select(Conversation.id).where(
        Conversation.customer_id == customer_id, Conversation.status.in_(OPEN),
        (Conversation.agent_id == me.id) | (Conversation.status == "waiting")).limit(1)) is not None


def customer_view(session: Session, me: Any, customer_id: str) -> dict[str, Any]:
    if not may_see(session, me, customer_id):
        raise CustomerError(403, "forbidden", "you do not serve this customer")
    customer = session.get(Customer, customer_id)
    user = session.get(User, customer_id)
    if customer is None and user is None:
        raise CustomerError(404, "not_found", f"no customer {customer_id}")
    profile = customer_json(customer) if customer is not None else {
        "id": customer_id, "name": user.name if user else None, "email": None, "phone": None,
        "language": None, "is_vip": False, "lifetime_value": 0.0}
    holds = session.execute(select(Reservation, Product.name).join(
        Product, Product.id == Reservation.product_id, isouter=True).where(
        Reservation.customer_id == customer_id, Reservation.status == "held",
        Reservation.expires_at > utcnow()).order_by(Reservation.expires_at)).all()
    return {"customer": profile,
            "orders": list_orders(session, customer_id=customer_id, status=None, limit=20),
            "reservations": [reservation_json(r) | {"product_name": name} for r, name in holds]}


def summaries(session: Session, ids: set[str]) -> dict[str, dict[str, Any]]:
    """What a list (of conversations, of orders) shows of each customer: a name, VIP, language."""
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.name, Customer.name, Customer.is_vip, Customer.language)
                           .join(Customer, Customer.user_id == User.id, isouter=True)
                           .where(User.id.in_(ids))).all()
    return {uid: {"name": store_name or token_name, "is_vip": bool(vip), "language": language}
            for uid, token_name, store_name, vip, language in rows}
