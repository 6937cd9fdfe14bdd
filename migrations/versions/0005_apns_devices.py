"""A device token says which service it belongs to: FCM (as before) or APNs, sent to
straight from here (PROTOCOL.md section 5).

Revision ID: 0005_apns_devices
Revises: 0004_routing_indexes
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_apns_devices"
down_revision: str | None = "0004_routing_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_tokens") as batch:
        batch.add_column(sa.Column("provider", sa.String(8), nullable=False, server_default="fcm"))
        batch.create_check_constraint(op.f("ck_device_tokens_provider"), "provider IN ('fcm', 'apns')")


def downgrade() -> None:
    with op.batch_alter_table("device_tokens") as batch:
        batch.drop_constraint(op.f("ck_device_tokens_provider"), type_="check")
        batch.drop_column("provider")
