"""Schema changes for orders and inventory (issue 5).

Revision ID: 0004_commerce
Revises: 0003_notifications
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0004_commerce"
down_revision: str | None = "0003_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
