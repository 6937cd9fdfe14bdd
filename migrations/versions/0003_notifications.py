"""Schema changes for notifications (issue 4).

Revision ID: 0003_notifications
Revises: 0002_chat
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0003_notifications"
down_revision: str | None = "0002_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
