"""state intervals

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 04:19:03.471475
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:

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


def downgrade() -> None:

    with op.batch_alter_table("state_intervals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_state_intervals_start"))
        batch_op.drop_index(batch_op.f("ix_state_intervals_machine_id"))
        batch_op.drop_index(batch_op.f("ix_state_intervals_enterprise_id"))

    op.drop_table("state_intervals")
