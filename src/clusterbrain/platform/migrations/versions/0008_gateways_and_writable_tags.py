"""devices behind an edge gateway; tags that commands may set

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 20:30:00

A device read by an edge gateway names it (``devices.gateway_id``): the gateway publishes the
device's data under its own topics, and ingest accepts it only from that gateway. A profile tag
marked ``writable`` may be set by a command, within its range.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gateway_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_devices_gateway_id"), ["gateway_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_devices_gateway_id_devices", "devices", ["gateway_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("profile_tags", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("writable", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("profile_tags", schema=None) as batch_op:
        batch_op.drop_column("writable")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint("fk_devices_gateway_id_devices", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_devices_gateway_id"))
        batch_op.drop_column("gateway_id")
