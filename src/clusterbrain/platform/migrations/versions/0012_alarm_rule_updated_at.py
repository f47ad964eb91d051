"""alarm rules record when they last changed, so that a running engine notices edits made elsewhere

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch copy: on SQLite, copying alarm_rules would drop the old
    # table, and with it (ON DELETE CASCADE) every alarm of every rule. A NOT NULL column needs a
    # default there; every row then takes its creation time.
    op.add_column(
        "alarm_rules",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("'1970-01-01 00:00:00'"),
        ),
    )
    op.execute("UPDATE alarm_rules SET updated_at = created_at")
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a column default
        op.alter_column("alarm_rules", "updated_at", server_default=None)


def downgrade() -> None:
    op.drop_column("alarm_rules", "updated_at")
