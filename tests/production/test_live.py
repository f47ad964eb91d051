"""Live views: machine states now, and KPIs of this shift and day summed per scope."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fastapi.testclient import TestClient

from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import Machine
from clusterbrain.platform.service import authenticate_token
from clusterbrain.production import live, oee_service
from clusterbrain.production.calendar import SiteCalendar
from clusterbrain.production.kpi import compute_kpis
from clusterbrain.production.states import MachineState
from support.production import CALENDAR, MIN, SHIFT_START, worked_shift_table
from support.world import World


def test_states_now_from_the_tracker_and_offline_after_silence(
    runtime: Runtime, world: World
) -> None:
    table = worked_shift_table(world.a.device_id)
    runtime.store.write(table)
    runtime.tracker.process(table)
    with session_scope(runtime.sessions) as session:
        principal = authenticate_token(session, world.a.token)
        machines = live.watched_machines(session, principal)
        machine = session.get(Machine, world.a.machine_id)
        assert machine is not None
        assert machines[0].setup == oee_service.machine_setup(session, machine)  # read in bulk
    assert [m.machine_id for m in machines] == [world.a.machine_id]
    during = live.machine_statuses(runtime.store, machines, SHIFT_START + 480 * MIN)
    assert during[0].state is MachineState.UNPLANNED_DOWN
    assert during[0].since == SHIFT_START + 450 * MIN
    assert during[0].values["good_count"] == 380
    later = live.machine_statuses(runtime.store, machines, SHIFT_START + 600 * MIN)
    assert later[0].state is MachineState.OFFLINE
    assert later[0].since == SHIFT_START + 485 * MIN  # last sample + 300 s


def test_states_now_follow_the_newest_values_while_the_tracker_is_behind(
    runtime: Runtime, world: World
) -> None:
    table = worked_shift_table(world.a.device_id)
    runtime.store.write(table)
    cut = pa.scalar(SHIFT_START + 300 * MIN, pa.timestamp("us", tz="UTC"))
    runtime.tracker.process(table.filter(pc.less(table["ts"], cut)))  # running since minute 230
    with session_scope(runtime.sessions) as session:
        principal = authenticate_token(session, world.a.token)
        machines = live.watched_machines(session, principal)
    now = SHIFT_START + 481 * MIN
    behind = live.machine_statuses(runtime.store, machines, now)[0]
    assert behind.state is MachineState.UNPLANNED_DOWN  # what the newest values say
    assert behind.since is None  # not known until the tracker has recorded the change
    runtime.tracker.process(table.filter(pc.greater_equal(table["ts"], cut)))
    caught_up = live.machine_statuses(runtime.store, machines, now)[0]
    assert caught_up.state is MachineState.UNPLANNED_DOWN
    assert caught_up.since == SHIFT_START + 450 * MIN


def test_shift_and_day_kpis_per_scope_are_sums(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    url = f"/api/v1/sites/{world.a.site_id}/calendar"
    assert client.put(url, json=CALENDAR, headers=world.a.headers).status_code == 200
    table = worked_shift_table(world.a.device_id)
    runtime.store.write(table)
    now = SHIFT_START + 240 * MIN  # inside the day shift, after the first stop
    with session_scope(runtime.sessions) as session:
        principal = authenticate_token(session, world.a.token)
        found = live.scope_kpis(session, runtime.store, principal, now)
    assert set(found.day) == {"enterprise", f"line:{world.a.line_id}", f"site:{world.a.site_id}"}
    assert found.day["enterprise"] == found.day[f"line:{world.a.line_id}"]
    assert found.names[f"line:{world.a.line_id}"]
    shift = compute_kpis(found.shift["enterprise"])
    assert shift.availability == 210 / 240  # down from minute 200 to 230
    assert found.shift["enterprise"] == found.day["enterprise"]  # one shift a day


def test_shift_and_day_read_together_equal_each_window_read_alone(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    two_shifts = {
        "timezone": "Asia/Shanghai",
        "pattern": {
            "shifts": [
                {"name": "early", "start": "08:00", "end": "12:00"},
                {"name": "late", "start": "12:00", "end": "16:00"},
            ]
        },
    }
    url = f"/api/v1/sites/{world.a.site_id}/calendar"
    assert client.put(url, json=two_shifts, headers=world.a.headers).status_code == 200
    runtime.store.write(worked_shift_table(world.a.device_id))
    now = SHIFT_START + 300 * MIN  # in the late shift; the early one had the stop at 200-230
    with session_scope(runtime.sessions) as session:
        principal = authenticate_token(session, world.a.token)
        found = live.scope_kpis(session, runtime.store, principal, now)
        machine = session.get(Machine, world.a.machine_id)
        assert machine is not None
        alone = {
            name: oee_service.machine_period_elements(
                session, runtime.store, machine, [(start, now)], now=now
            )[0][0]
            for name, start in (("shift", SHIFT_START + 240 * MIN), ("day", SHIFT_START))
        }
    assert asdict(found.shift["enterprise"]) == pytest.approx(asdict(alone["shift"]))
    assert asdict(found.day["enterprise"]) == pytest.approx(asdict(alone["day"]))
    assert compute_kpis(found.shift["enterprise"]).availability == 1.0
    assert compute_kpis(found.day["enterprise"]).availability == pytest.approx(270 / 300)


def test_current_shift_and_day_windows() -> None:
    calendar = SiteCalendar.model_validate(
        {"pattern": {"shifts": [{"name": "day", "start": "08:00", "end": "16:00"}]}}
    )
    inside = live.current_shift(calendar, SHIFT_START + timedelta(hours=1))
    assert inside is not None and inside.start == SHIFT_START
    assert live.current_shift(calendar, SHIFT_START + timedelta(hours=9)) is None
    day = live.today(calendar, SHIFT_START + timedelta(hours=9))
    assert day.start == SHIFT_START and day.end - day.start == timedelta(days=1)


def test_a_period_in_progress_counts_planned_time_only_until_now(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    url = f"/api/v1/sites/{world.a.site_id}/calendar"
    assert client.put(url, json=CALENDAR, headers=world.a.headers).status_code == 200
    runtime.store.write(worked_shift_table(world.a.device_id))
    shift = (SHIFT_START, SHIFT_START + 480 * MIN)
    with session_scope(runtime.sessions) as session:
        machine = session.get(Machine, world.a.machine_id)
        assert machine is not None
        halfway = SHIFT_START + 240 * MIN
        (elements,), _ = oee_service.machine_period_elements(
            session, runtime.store, machine, [shift], now=halfway
        )
        (whole,), _ = oee_service.machine_period_elements(
            session, runtime.store, machine, [shift], now=SHIFT_START + timedelta(days=1)
        )
    assert elements.planned_busy_time == 240 * 60
    assert elements.actual_unit_down_time == 30 * 60
    assert whole.planned_busy_time == 480 * 60
