"""KPIs of many machines at once equal the KPIs of each machine on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from clusterbrain.api.provision import COUNTER_TAGS, provision_cluster
from clusterbrain.api.runtime import Runtime
from clusterbrain.devices.models import Device
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.errors import NotFound
from clusterbrain.platform.models import Machine, User
from clusterbrain.platform.service import bootstrap_admin, principal_of
from clusterbrain.production import oee_service
from clusterbrain.production.models import ProductionOrder
from clusterbrain.sim.signals import make_model
from clusterbrain.telemetry.decode import PointColumns

START = datetime(2025, 11, 24, tzinfo=UTC)  # 08:00 in Shanghai: a production day begins
DAYS = 2
STEP_S = 60.0


def _simulate(runtime: Runtime, device_id: str, kind: str, seed: int, track: bool) -> None:
    model = make_model(kind, np.random.default_rng([5, seed]))
    tags = [t for t in COUNTER_TAGS[kind] if t]
    columns = PointColumns()
    now = START.timestamp()
    model.step(now - STEP_S, STEP_S)
    for _ in range(round(DAYS * 86400 / STEP_S) - 30):  # stops half an hour early: an open end
        sample = model.step(now, STEP_S)
        at = round(now * 1e6)
        columns.append(device_id, "state", at, None, str(sample["state"]), 0)
        for tag in tags:
            columns.append(device_id, tag, at, float(sample[tag]), None, 0)
        now += STEP_S
    table = columns.to_table()
    runtime.store.write(table)
    if track:
        runtime.tracker.process(table)


def test_machines_at_once_equal_each_machine_alone(runtime: Runtime) -> None:
    provisioned = provision_cluster(runtime, enterprises=2, machines=8)
    producing = [d for d in provisioned if d.kind in COUNTER_TAGS]
    assert len(producing) >= 5
    for seed, device in enumerate(producing):
        # the first machine's points never reach the tracker: "auto" reads its raw points
        _simulate(runtime, device.device_id, device.kind, seed, track=seed > 0)
    end = START + timedelta(days=DAYS)
    with session_scope(runtime.sessions) as session:
        principal = principal_of(bootstrap_admin(session, "admin")[0])
        devices = {d.id: d.machine_id for d in session.query(Device)}
        ids = sorted({m for m in devices.values() if m is not None}, reverse=True)
        ordered = devices[producing[1].device_id]
        assert ordered is not None
        session.add(
            ProductionOrder(
                enterprise_id=1,
                machine_id=ordered,
                order_number="PO-1",
                product="lamp housing",
                ideal_cycle_time_s=30.0,
                units_per_cycle=2,
                planned_quantity=1000,
                planned_start=START + timedelta(hours=5, minutes=17),
                planned_end=START + timedelta(days=1, hours=2),
            )
        )
        session.flush()
        for source in ("auto", "stored", "raw"):
            for period in ("day", "shift", "total"):
                many = oee_service.machines_kpis_by_period(
                    session, runtime.store, principal, ids, START, end, period, source=source
                )
                assert list(many) == ids
                for machine_id in ids:
                    _, alone = oee_service.machine_kpis_by_period(
                        session,
                        runtime.store,
                        principal,
                        machine_id,
                        START,
                        end,
                        period,
                        source=source,
                    )
                    assert many[machine_id] == alone, (source, period, machine_id)
        stored = oee_service.machines_kpis_by_period(
            session, runtime.store, principal, ids, START, end, "day", source="stored"
        )
        assert any(r.kpis.oee for r in stored[ordered])
        assert stored[ordered][0].elements.planned_runtime_total > 0


def test_machines_of_another_enterprise_are_not_found(runtime: Runtime) -> None:
    provision_cluster(runtime, enterprises=2, machines=4)
    with session_scope(runtime.sessions) as session:
        manager = session.query(User).filter(User.enterprise_id == 1).first()
        assert manager is not None
        principal = principal_of(manager)
        mine = [m.id for m in session.query(Machine).filter(Machine.enterprise_id == 1)]
        theirs = [m.id for m in session.query(Machine).filter(Machine.enterprise_id == 2)]
        end = START + timedelta(days=1)
        found = oee_service.machines_kpis_by_period(
            session, runtime.store, principal, mine, START, end, "day"
        )
        assert list(found) == mine
        with pytest.raises(NotFound):
            oee_service.machines_kpis_by_period(
                session, runtime.store, principal, [*mine, theirs[0]], START, end, "day"
            )
