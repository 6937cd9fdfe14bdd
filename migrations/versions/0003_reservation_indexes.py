"""Reservations: partial indexes on the holds still counted (status 'held').

A hot product accumulates committed and expired reservations; what the hold
path, the reclaim and the sweep ask about are the holds still counted, by
level and by expiry. Indexes over `status = 'held'` only stay small, and a
reservation leaves them when it leaves `held`.

Revision ID: 0003_reservation_indexes
Revises: 0002_chat
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_reservation_indexes"
down_revision: str | None = "0002_chat"
branch_labels = None
depends_on = None

HELD = sa.text("status = 'held'")


def upgrade() -> None:
    op.drop_index("ix_reservations_stock_status", table_name="reservations")
    op.drop_index("ix_reservations_expires_at", table_name="reservations")
    op.create_index("ix_reservations_held_level", "reservations",
                    ["product_id", "variant_id", "location", "expires_at"],
                    postgresql_where=HELD, sqlite_where=HELD)
    op.create_index("ix_reservations_held_expiry", "reservations", ["expires_at"],
                    postgresql_where=HELD, sqlite_where=HELD)


def downgrade() -> None:
    op.drop_index("ix_reservations_held_expiry", table_name="reservations")
    op.drop_index("ix_reservations_held_level", table_name="reservations")
    op.create_index("ix_reservations_expires_at", "reservations", ["expires_at"])
    op.create_index("ix_reservations_stock_status", "reservations",
                    ["product_id", "variant_id", "location", "status"])
