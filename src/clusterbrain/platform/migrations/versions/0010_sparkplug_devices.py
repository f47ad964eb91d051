"""Sparkplug B devices: group claims, pending devices, offline after a DEATH

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00

A Sparkplug group id is claimed by one enterprise (``sparkplug_groups``). A node or device that
announces itself with a BIRTH is registered as ``pending`` with its Sparkplug key
(``group/edge_node[/device]``) until an engineer approves it; ``offline_since`` is set by its
DEATH and cleared by its next BIRTH. Existing devices become ``active``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="active")
        )
        batch_op.add_column(sa.Column("sparkplug_key", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("offline_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "uq_devices_enterprise_sparkplug_key", ["enterprise_id", "sparkplug_key"], unique=True
        )
    op.create_table(
        "sparkplug_groups",
        sa.Column("group_id", sa.String(length=100), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("group_id"),
    )
    with op.batch_alter_table("sparkplug_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sparkplug_groups_enterprise_id"), ["enterprise_id"])


def downgrade() -> None:
    op.drop_table("sparkplug_groups")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index("uq_devices_enterprise_sparkplug_key")
        batch_op.drop_column("offline_since")
        batch_op.drop_column("sparkplug_key")
        batch_op.drop_column("status")
