"""Routing learns from the latest resolved conversations and counts the latest arrivals.

Every routing pass with a queue and a free slot reads the 2,000 most recently
resolved conversations (handling times, actions/routing_stats.py) and those
created in the last hours (arrival rates, VIP waits). Without an index on
`resolved_at` and `created_at` both would sort or scan the whole history.

Revision ID: 0004_routing_indexes
Revises: 0003_reservation_indexes
"""
from __future__ import annotations

from alembic import op

revision: str = "0004_routing_indexes"
down_revision: str | None = "0003_reservation_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_conversations_resolved_at", "conversations", ["resolved_at"])
    op.create_index("ix_conversations_created_at", "conversations", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_created_at", table_name="conversations")
    op.drop_index("ix_conversations_resolved_at", table_name="conversations")
