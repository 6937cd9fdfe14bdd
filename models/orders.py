"""Orders (the store's ids) and their status history; tracking polls are timed in the DB."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow
from models.types import BigIntPK, UTCDateTime, one_of

ORDER_STATUSES = ("pending", "confirmed", "processing", "shipped", "in_transit",
                  "out_for_delivery", "delivered", "cancelled", "returned", "failed_delivery")
HISTORY_SOURCES = ("api", "carrier", "webhook")


class Order(Base):
    """`next_poll_at` is the tracking timer: a beat sweep polls rows whose time has come,
    whatever happened to a countdown; NULL means not tracked (any more)."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(one_of("status", ORDER_STATUSES), name="status"),
        Index("ix_orders_customer_created", "customer_id", "created_at"),
        Index(None, "next_poll_at"),
        Index("ix_orders_carrier_tracking", "carrier", "tracking_number"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    carrier: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    estimated_delivery: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    tracking_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    poll_failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    history: Mapped[list[OrderStatusHistory]] = relationship(
        back_populates="order", cascade="all, delete-orphan", passive_deletes=True,
        order_by=lambda: [OrderStatusHistory.created_at, OrderStatusHistory.id])


class OrderStatusHistory(Base):
    __tablename__ = "order_status_history"
    __table_args__ = (
        CheckConstraint(one_of("source", HISTORY_SOURCES), name="source"),
        Index("ix_order_status_history_order_created", "order_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), ForeignKey("orders.id", ondelete="CASCADE"))
    previous_status: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(Text)
    estimated_delivery: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    order: Mapped[Order] = relationship(back_populates="history")
