"""Migrations: `db upgrade` builds exactly the schema the models describe, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from clusterbrain.devices.models import Device, DeviceProfile
from clusterbrain.platform.db import Base, UTCDateTime, make_engine
from clusterbrain.platform.migrate import current_tables, upgrade
from clusterbrain.platform.model_registry import import_all_models
from clusterbrain.platform.models import Cluster, Enterprise
from clusterbrain.production.alarms import Alarm, Priority
from clusterbrain.production.models import AlarmEvent, AlarmRecord, AlarmRule

CREATED = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
RULES_0010 = sa.table(
    "alarm_rules",
    *(
        sa.column(name)
        for name in (
            "id",
            "enterprise_id",
            "device_id",
            "name",
            "priority",
            "message",
            "enabled",
            "disabled_reason",
            "webhook_url",
        )
    ),
    sa.column("definition", sa.JSON()),
    sa.column("emails", sa.JSON()),
    sa.column("created_at", UTCDateTime()),
)
"""alarm_rules as revision 0010 left it (the model has columns added since)."""


def test_upgrade_matches_models_and_is_repeatable(metadata_url: str) -> None:
    upgrade(metadata_url)
    upgrade(metadata_url)  # a second run is a no-op
    import_all_models()
    assert set(Base.metadata.tables) <= current_tables(metadata_url)
    engine = make_engine(metadata_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_alarm_history_moves_into_the_journal(metadata_url: str) -> None:
    """0011: an alarm's whole history lands in alarm_events, its document keeps the latest 50."""
    upgrade(metadata_url, "0010")
    import_all_models()
    history = [
        {
            "ts_us": 1_000_000 * n,
            "event": "condition_active" if n % 2 == 0 else "condition_cleared",
            "user": None if n % 3 else "li.wei",
            "from_state": "normal" if n % 2 == 0 else "unack_active",
            "to_state": "unack_active" if n % 2 == 0 else "unack_rtn",
            "detail": f"line {n}",
        }
        for n in range(120)
    ]
    document = {**Alarm("1", Priority.HIGH).to_dict(), "audit": history}
    engine = make_engine(metadata_url)
    try:
        with Session(engine) as session, session.begin():
            cluster = Cluster(name="Guzhen")
            session.add(cluster)
            session.flush()
            enterprise = Enterprise(cluster_id=cluster.id, name="Lamps Co")
            session.add(enterprise)
            session.flush()
            profile = DeviceProfile(enterprise_id=enterprise.id, name="press")
            session.add(profile)
            session.flush()
            session.add(
                Device(
                    id="press-1",
                    enterprise_id=enterprise.id,
                    profile_id=profile.id,
                    secret_hash="x",
                )
            )
            session.execute(
                insert(RULES_0010),
                {
                    "enterprise_id": enterprise.id,
                    "device_id": "press-1",
                    "name": "Oil hot 油温高",
                    "definition": {"type": "threshold", "tag": "t", "op": ">", "limit": 1},
                    "priority": "high",
                    "message": "",
                    "enabled": True,
                    "disabled_reason": "",
                    "webhook_url": "",
                    "emails": [],
                    "created_at": CREATED,
                },
            )
            rule_id = session.execute(select(RULES_0010.c.id)).scalar_one()
            session.add(
                AlarmRecord(
                    enterprise_id=enterprise.id,
                    rule_id=rule_id,
                    state="unack_rtn",
                    priority="high",
                    document=document,
                )
            )
        upgrade(metadata_url)
        with Session(engine) as session:
            events = session.scalars(select(AlarmEvent).order_by(AlarmEvent.ts_us)).all()
            record = session.scalars(select(AlarmRecord)).one()
            rule = session.scalars(select(AlarmRule)).one()
    finally:
        engine.dispose()
    assert [e.detail for e in events] == [f"line {n}" for n in range(120)]
    assert {(e.rule_name, e.device_id, e.priority) for e in events} == {
        ("Oil hot 油温高", "press-1", "high")
    }
    assert events[0].user == "li.wei" and events[1].user == ""
    kept = Alarm.from_dict(record.document).audit
    assert [a.detail for a in kept] == [f"line {n}" for n in range(70, 120)]
    assert rule.updated_at == CREATED  # 0012: a rule's last change is its creation
