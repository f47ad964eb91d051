"""The `clusterbrain` command: database, devices and tokens from the shell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clusterbrain.api.runtime import Runtime
from clusterbrain.cli import app
from clusterbrain.platform.settings import Settings
from support.world import seed_world


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CLUSTERBRAIN_VAR_DIR", str(tmp_path / "var"))
    return Settings()


def test_db_upgrade_creates_the_database(env: Settings) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (env.var_dir / "clusterbrain.db").exists()


def test_device_add_list_rotate_revoke(env: Settings) -> None:
    runtime = Runtime(env)
    world = seed_world(runtime)
    runtime.close()
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "device",
            "add",
            "--enterprise",
            str(world.a.enterprise_id),
            "--profile",
            str(world.a.profile_id),
            "--id",
            "cli-dev",
        ],
    )
    assert added.exit_code == 0, added.output
    assert re.search(r"cbd_[\w-]+", added.output)
    listed = runner.invoke(app, ["device", "list"])
    assert "cli-dev" in listed.output and "never" in listed.output
    rotated = runner.invoke(app, ["device", "rotate", "cli-dev"])
    assert rotated.exit_code == 0 and "cbd_" in rotated.output
    revoked = runner.invoke(app, ["device", "revoke", "cli-dev"])
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(app, ["device", "list"]).output


def test_device_add_refuses_a_foreign_profile(env: Settings) -> None:
    runtime = Runtime(env)
    world = seed_world(runtime)
    runtime.close()
    result = CliRunner().invoke(
        app,
        [
            "device",
            "add",
            "--enterprise",
            str(world.a.enterprise_id),
            "--profile",
            str(world.b.profile_id),
        ],
    )
    assert result.exit_code != 0


def test_admin_token_prints_a_token(env: Settings) -> None:
    result = CliRunner().invoke(app, ["admin", "token"])
    assert result.exit_code == 0 and result.output.strip().startswith("cbt_")


def test_telemetry_prune_deletes_old_raw_points(env: Settings) -> None:
    from datetime import UTC, datetime, timedelta

    from clusterbrain.telemetry.backends import open_store
    from clusterbrain.telemetry.decode import PointColumns

    store = open_store(env)
    columns = PointColumns()
    old = datetime.now(UTC) - timedelta(days=40)
    for i in range(10):
        ts_us = int((old + timedelta(seconds=i)).timestamp() * 1_000_000)
        columns.append("dev-x", "t", ts_us, float(i), None, 0)
    columns.append("dev-x", "t", int(datetime.now(UTC).timestamp() * 1_000_000), 1.0, None, 0)
    assert store.write(columns.to_table()) == 11
    store.close()
    result = CliRunner().invoke(app, ["telemetry", "prune", "--older-than-days", "30"])
    assert result.exit_code == 0 and "deleted 10 raw points" in result.output


def test_kpi_prints_oee_per_period(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.models import MachineSettings, SiteCalendar
    from support.production import CALENDAR, write_worked_shift

    runtime = Runtime(env)
    world = seed_world(runtime)
    write_worked_shift(runtime.store, world.a.device_id)
    with session_scope(runtime.sessions) as session:
        session.add(
            SiteCalendar(
                site_id=world.a.site_id, enterprise_id=world.a.enterprise_id, definition=CALENDAR
            )
        )
        session.add(
            MachineSettings(
                machine_id=world.a.machine_id,
                enterprise_id=world.a.enterprise_id,
                state_rules={},
                ideal_cycle_time_s=60.0,
            )
        )
    runtime.close()
    args = [
        "kpi",
        "--machine",
        str(world.a.machine_id),
        "--from",
        "2026-11-23",
        "--to",
        "2026-11-25",
    ]
    result = CliRunner().invoke(app, [*args, "--period", "day"])
    assert result.exit_code == 0, result.output
    assert "87.5 %" in result.output and "95.0 %" in result.output and "79.2 %" in result.output
    assert "2026-11-24" in result.output  # one row per production day
    shifts = CliRunner().invoke(app, [*args, "--period", "shift"])
    assert shifts.exit_code == 0 and shifts.output.count("2026-11-2") >= 4
    bad = CliRunner().invoke(app, [*args, "--period", "fortnight"])
    assert bad.exit_code != 0


def test_stops_and_alarms_commands(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.alarms import Alarm, Priority
    from clusterbrain.production.models import AlarmRecord, AlarmRule
    from support.production import write_worked_shift

    monkeypatch.setenv("COLUMNS", "200")
    runtime = Runtime(env)
    world = seed_world(runtime)
    write_worked_shift(runtime.store, world.a.device_id)
    with session_scope(runtime.sessions) as session:
        rule = AlarmRule(
            enterprise_id=world.a.enterprise_id,
            device_id=world.a.device_id,
            name="oil hot",
            definition={"type": "no_data", "timeout_s": 60},
            priority="high",
        )
        session.add(rule)
        session.flush()
        alarm = Alarm(str(rule.id), Priority.HIGH)
        alarm.condition_active(1)
        session.add(
            AlarmRecord(
                enterprise_id=world.a.enterprise_id,
                rule_id=rule.id,
                state=alarm.state.value,
                priority="high",
                document=alarm.to_dict(),
            )
        )
    runtime.close()
    result = CliRunner().invoke(
        app, ["stops", "--from", "2026-11-23T08:00", "--to", "2026-11-23T16:00"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("unplanned_down") == 2 and "awaiting_reason" in result.output
    listed = CliRunner().invoke(app, ["alarms"])
    assert listed.exit_code == 0 and "oil hot" in listed.output and "unack_active" in listed.output
