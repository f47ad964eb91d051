"""state changes and counts move to the telemetry store

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 06:50:00

Machine states are kept as derived series in the telemetry store (``$state``, beside the counts
``$good``/``$scrap``/``$energy``), where KPIs of long ranges read them with the rollups.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("state_intervals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_state_intervals_start"))
        batch_op.drop_index(batch_op.f("ix_state_intervals_machine_id"))
        batch_op.drop_index(batch_op.f("ix_state_intervals_enterprise_id"))
    op.drop_table("state_intervals")


def downgrade() -> None:
    op.create_table(
        "state_intervals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sample", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("state_intervals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_state_intervals_enterprise_id"), ["enterprise_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_state_intervals_machine_id"), ["machine_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_state_intervals_start"), ["start"], unique=False)
