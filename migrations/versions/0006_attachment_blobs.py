"""Attachments' bytes in the database every process shares (or in S3): no web host's disk.

Revision ID: 0006_attachment_blobs
Revises: 0005_apns_devices
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_attachment_blobs"
down_revision: str | None = "0005_apns_devices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("storage", sa.String(16), nullable=False, server_default="database"))
    op.create_table(
        "attachment_blobs",
        sa.Column("attachment_id", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["attachment_id"], ["attachments.id"], ondelete="CASCADE",
                                name=op.f("fk_attachment_blobs_attachment_id_attachments")),
        sa.PrimaryKeyConstraint("attachment_id", name=op.f("pk_attachment_blobs")),
    )


def downgrade() -> None:
    op.drop_table("attachment_blobs")
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("storage")
