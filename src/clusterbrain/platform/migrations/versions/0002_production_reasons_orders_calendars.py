"""production reasons orders calendars

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 03:24:11.592689
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "downtime_reasons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("name_zh", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["parent_id"], ["downtime_reasons.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enterprise_id", "code"),
    )
    with op.batch_alter_table("downtime_reasons", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_downtime_reasons_enterprise_id"), ["enterprise_id"], unique=False
        )

    op.create_table(
        "site_calendars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id"),
    )
    with op.batch_alter_table("site_calendars", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_site_calendars_enterprise_id"), ["enterprise_id"], unique=False
        )

    op.create_table(
        "machine_settings",
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("state_rules", sa.JSON(), nullable=False),
        sa.Column("ideal_cycle_time_s", sa.Float(), nullable=True),
        sa.Column("good_count_tag", sa.String(length=100), nullable=False),
        sa.Column("scrap_count_tag", sa.String(length=100), nullable=False),
        sa.Column("energy_tag", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("machine_id"),
    )
    with op.batch_alter_table("machine_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_machine_settings_enterprise_id"), ["enterprise_id"], unique=False
        )

    op.create_table(
        "production_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("order_number", sa.String(length=100), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("ideal_cycle_time_s", sa.Float(), nullable=False),
        sa.Column("units_per_cycle", sa.Integer(), nullable=False),
        sa.Column("planned_quantity", sa.Integer(), nullable=False),
        sa.Column("planned_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("planned_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("production_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_production_orders_enterprise_id"), ["enterprise_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_production_orders_machine_id"), ["machine_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("production_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_production_orders_machine_id"))
        batch_op.drop_index(batch_op.f("ix_production_orders_enterprise_id"))

    op.drop_table("production_orders")
    with op.batch_alter_table("machine_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_machine_settings_enterprise_id"))

    op.drop_table("machine_settings")
    with op.batch_alter_table("site_calendars", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_calendars_enterprise_id"))

    op.drop_table("site_calendars")
    with op.batch_alter_table("downtime_reasons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_downtime_reasons_enterprise_id"))

    op.drop_table("downtime_reasons")
