"""Stock with reservations. `held` and `on_hand` change only by conditional updates; the
CHECKs make overselling impossible even if a caller gets that wrong."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, new_id, utcnow
from models.types import BigIntPK, UTCDateTime, one_of

RESERVATION_STATUSES = ("held", "committed", "released", "expired")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=5, server_default=text("5"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    stock_levels: Mapped[list[StockLevel]] = relationship(
        back_populates="product", cascade="all, delete-orphan", passive_deletes=True)


class StockLevel(Base):
    """One row per (product, variant, location); product-level stock has variant_id ''.
    `held` is the sum of active holds; available = on_hand - unexpired holds."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("product_id", "variant_id", "location"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("held >= 0", name="held_not_negative"),
        CheckConstraint("held <= on_hand", name="held_within_on_hand"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("products.id", ondelete="CASCADE"))
    variant_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    location: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    on_hand: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    held: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    low_stock_alerted: Mapped[bool] = mapped_column(Boolean, default=False,
                                                    server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    product: Mapped[Product] = relationship(back_populates="stock_levels")


_HELD = text("status = 'held'")


class Reservation(Base):
    """A hold. `expires_at` is the timer (a beat sweep expires what a countdown missed);
    `idempotency_key` is unique per owner (the Idempotency-Key header)."""

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(one_of("status", RESERVATION_STATUSES), name="status"),
        # Only the holds still counted (migrations/versions/0003).
        Index("ix_reservations_held_level", "product_id", "variant_id", "location", "expires_at",
              postgresql_where=_HELD, sqlite_where=_HELD),
        Index("ix_reservations_held_expiry", "expires_at", postgresql_where=_HELD, sqlite_where=_HELD),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    product_id: Mapped[str] = mapped_column(String(64))
    variant_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    location: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    quantity: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="held", server_default="held")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class StockChange(Base):
    """Audit trail of every stock change (the `inventory_alert` payload)."""

    __tablename__ = "stock_changes"
    __table_args__ = (Index("ix_stock_changes_product_created", "product_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(String(64))
    variant_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    location: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    change_type: Mapped[str] = mapped_column(String(32))
    delta: Mapped[int] = mapped_column(Integer)
    previous_quantity: Mapped[int] = mapped_column(Integer)
    current_quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
