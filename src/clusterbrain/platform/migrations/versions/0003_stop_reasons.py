"""stop reasons

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 03:33:26.708395
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "stop_reasons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("stop_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stop_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason_id", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(length=500), nullable=False),
        sa.Column("assigned_by", sa.Integer(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["assigned_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reason_id"], ["downtime_reasons.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("machine_id", "stop_start"),
    )
    with op.batch_alter_table("stop_reasons", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stop_reasons_enterprise_id"), ["enterprise_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_stop_reasons_machine_id"), ["machine_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("stop_reasons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stop_reasons_machine_id"))
        batch_op.drop_index(batch_op.f("ix_stop_reasons_enterprise_id"))

    op.drop_table("stop_reasons")
