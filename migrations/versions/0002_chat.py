"""Schema changes for chat (issue 3): agent presence restore and counters, unanswered timer.

Revision ID: 0002_chat
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_chat"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("resume_status", sa.String(16), nullable=True))
    op.add_column("agents", sa.Column("responses_count", sa.Integer(), nullable=False,
                                      server_default=sa.text("0")))
    op.add_column("conversations", sa.Column("awaiting_reply_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("awaiting_reply_since")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("responses_count")
        batch.drop_column("resume_status")
