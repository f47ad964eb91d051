"""alarm journal: every lifecycle event in its own table, alarm documents keep the latest

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 23:50:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DOCUMENT_HISTORY = 50

alarms = sa.table(
    "alarms",
    sa.column("id", sa.Integer()),
    sa.column("enterprise_id", sa.Integer()),
    sa.column("rule_id", sa.Integer()),
    sa.column("priority", sa.String()),
    sa.column("document", sa.JSON()),
)
rules = sa.table(
    "alarm_rules",
    sa.column("id", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("device_id", sa.String()),
)


def upgrade() -> None:
    events = op.create_table(
        "alarm_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("rule_name", sa.String(length=200), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alarm_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarm_events_alarm_id"), ["alarm_id"])
        batch_op.create_index("ix_alarm_events_enterprise_ts", ["enterprise_id", "ts_us"])
    _move_history(events)


def _move_history(events: sa.Table) -> None:
    """Existing alarms: their whole history into the journal, the latest lines stay."""
    bind = op.get_bind()
    found = bind.execute(
        sa.select(
            alarms.c.id,
            alarms.c.enterprise_id,
            alarms.c.rule_id,
            alarms.c.priority,
            alarms.c.document,
            rules.c.name,
            rules.c.device_id,
        ).join(rules, rules.c.id == alarms.c.rule_id)
    ).all()
    for alarm_id, enterprise_id, rule_id, priority, document, name, device_id in found:
        history: list[dict[str, Any]] = list(document.get("audit", []))
        if history:
            bind.execute(
                events.insert(),
                [
                    {
                        "enterprise_id": enterprise_id,
                        "alarm_id": alarm_id,
                        "rule_id": rule_id,
                        "rule_name": name,
                        "device_id": device_id,
                        "priority": priority,
                        "ts_us": int(line["ts_us"]),
                        "event": str(line["event"]),
                        "user": str(line.get("user") or "")[:200],
                        "from_state": str(line["from_state"]),
                        "to_state": str(line["to_state"]),
                        "detail": str(line.get("detail") or "")[:1000],
                    }
                    for line in history
                ],
            )
        if len(history) > DOCUMENT_HISTORY:
            trimmed = {**document, "audit": history[-DOCUMENT_HISTORY:]}
            bind.execute(alarms.update().where(alarms.c.id == alarm_id).values(document=trimmed))


def downgrade() -> None:
    op.drop_table("alarm_events")
