"""The `clusterbrain` command: database, devices, tokens and production from the shell."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml  # type: ignore[import-untyped]
from click.testing import Result
from typer.testing import CliRunner

from clusterbrain.api.runtime import Runtime
from clusterbrain.cli import app
from clusterbrain.platform.settings import Settings
from support.cli_console import widen_console
from support.fixtures_mqtt import MqttPeer
from support.mosquitto import MosquittoProcess
from support.world import World, seed_world


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich sizes tables from the terminal, which a test run may not have; the tests read whole
    rows, so the console is wide whatever runs them."""
    widen_console(monkeypatch)


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


def test_sparkplug_credentials_need_a_claimed_group_and_a_broker_that_takes_logins(
    env: Settings,
) -> None:
    from clusterbrain.devices.sparkplug import claim_group
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.service import bootstrap_admin, principal_of

    runtime = Runtime(env)
    world = seed_world(runtime)
    with session_scope(runtime.sessions) as session:
        admin = principal_of(bootstrap_admin(session, "admin")[0])
        claim_group(session, admin, "plant1", world.a.enterprise_id)
    runtime.close()
    runner = CliRunner()
    unclaimed = runner.invoke(app, ["device", "sparkplug-credentials", "plant9", "gw-1"])
    assert unclaimed.exit_code == 1 and "plant9" in unclaimed.output
    no_dynsec = runner.invoke(app, ["device", "sparkplug-credentials", "plant1", "gw-1"])
    assert no_dynsec.exit_code == 1 and "dynsec" in no_dynsec.output


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


def _plan_worked_machine(runtime: Runtime, world: World) -> None:
    """Tenant A's site on the two-shift calendar, its machine at a 60 s ideal cycle."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.models import MachineSettings, SiteCalendar
    from support.production import CALENDAR

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


def test_kpi_prints_oee_per_period(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.production import write_worked_shift

    runtime = Runtime(env)
    world = seed_world(runtime)
    write_worked_shift(runtime.store, world.a.device_id)
    _plan_worked_machine(runtime, world)
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
    _refused(CliRunner().invoke(app, [*args, "--period", "fortnight"]), "period")


def _seed_alarm(runtime: Runtime, world: World) -> int:
    """An active, unacknowledged high-priority alarm on tenant A's device; returns its id."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.alarms import Alarm, Priority
    from clusterbrain.production.models import AlarmRecord, AlarmRule

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
        record = AlarmRecord(
            enterprise_id=world.a.enterprise_id,
            rule_id=rule.id,
            state=alarm.state.value,
            priority="high",
            document=alarm.to_dict(),
        )
        session.add(record)
        session.flush()
        return record.id


def test_stops_and_alarms_commands(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.production import write_worked_shift

    runtime = Runtime(env)
    world = seed_world(runtime)
    write_worked_shift(runtime.store, world.a.device_id)
    _seed_alarm(runtime, world)
    runtime.close()
    result = CliRunner().invoke(
        app, ["stops", "--from", "2026-11-23T08:00", "--to", "2026-11-23T16:00"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("unplanned_down") == 2 and "awaiting_reason" in result.output
    listed = CliRunner().invoke(app, ["alarms"])
    assert listed.exit_code == 0 and "oil hot" in listed.output and "unack_active" in listed.output
    assert CliRunner().invoke(app, ["alarms", "list"]).output == listed.output


def _refused(result: Result, *words: str) -> None:
    """Exit code 1 and one line on stderr that says why; no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _calendar_row(env: Settings, site_id: int) -> dict[str, Any] | None:
    from sqlalchemy import select

    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.models import SiteCalendar

    runtime = Runtime(env)
    try:
        with session_scope(runtime.sessions) as session:
            row = session.scalar(select(SiteCalendar).where(SiteCalendar.site_id == site_id))
            return None if row is None else dict(row.definition)
    finally:
        runtime.close()


def test_calendar_set_then_show_json_and_yaml(env: Settings, tmp_path: Path) -> None:
    from support.production import CALENDAR

    runtime = Runtime(env)
    world = seed_world(runtime)
    runtime.close()
    site = str(world.a.site_id)
    runner = CliRunner()
    assert _calendar_row(env, world.a.site_id) is None
    shown = runner.invoke(app, ["calendar", "show", "--site", site])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["pattern"]["shifts"] == []  # planned around the clock

    as_json = tmp_path / "calendar.json"
    as_json.write_text(json.dumps(CALENDAR))
    saved = runner.invoke(app, ["calendar", "set", "--site", site, "--file", str(as_json)])
    assert saved.exit_code == 0, saved.output
    assert "saved" in saved.output and "08:00:00" in saved.output
    shown = runner.invoke(app, ["calendar", "show", "--site", site])
    document = json.loads(shown.stdout)
    assert document["pattern"]["shifts"][0]["start"] == "08:00:00"
    assert document == _calendar_row(env, world.a.site_id)
    assert _calendar_row(env, world.b.site_id) is None

    # Unquoted times in YAML stay times (YAML 1.1 would read 20:00 as the number 1200).
    as_yaml = tmp_path / "calendar.yaml"
    as_yaml.write_text(
        "timezone: Asia/Shanghai\n"
        "pattern:\n"
        "  shifts:\n"
        "    - {name: day, start: 08:00, end: 20:00, days: [mon, tue, wed, thu, fri],\n"
        "       breaks: [{name: lunch, start: 12:00, end: 13:00}]}\n"
        "    - {name: night, start: 20:00, end: 08:00, days: [mon, tue, wed, thu, fri]}\n"
        "holidays: [2026-10-01]\n"
    )
    saved = runner.invoke(app, ["calendar", "set", "--site", site, "--file", str(as_yaml)])
    assert saved.exit_code == 0, saved.output
    shown = runner.invoke(app, ["calendar", "show", "--site", site, "--format", "yaml"])
    assert shown.exit_code == 0, shown.output
    document = yaml.safe_load(shown.stdout)
    night = document["pattern"]["shifts"][1]
    assert (night["name"], night["start"], night["end"]) == ("night", "20:00:00", "08:00:00")
    assert night["days"] == [0, 1, 2, 3, 4]
    assert document["holidays"] == ["2026-10-01"]
    row = _calendar_row(env, world.a.site_id)
    assert row is not None and row["pattern"]["shifts"][1]["start"] == "20:00:00"
    assert row["pattern"]["shifts"][0]["breaks"][0]["end"] == "13:00:00"


def test_calendar_set_refuses_bad_documents(env: Settings, tmp_path: Path) -> None:
    runtime = Runtime(env)
    world = seed_world(runtime)
    runtime.close()
    site = str(world.a.site_id)
    runner = CliRunner()

    def put(name: str, text: str, site_id: str = site) -> Result:
        path = tmp_path / name
        path.write_text(text)
        return runner.invoke(app, ["calendar", "set", "--site", site_id, "--file", str(path)])

    bad_time = {"pattern": {"shifts": [{"name": "day", "start": "25:00", "end": "16:00"}]}}
    _refused(put("a.json", json.dumps(bad_time)), "pattern.shifts.0.start")
    _refused(put("b.json", json.dumps({"timezone": "Mars/Olympus"})), "timezone")
    _refused(put("c.json", "{not json"), "--file", "c.json")
    _refused(put("d.yaml", "pattern: [unclosed"), "--file", "d.yaml")
    _refused(put("e.yaml", "- a list"), "mapping")
    _refused(put("f.txt", "{}"), "--file")
    _refused(put("g.json", "{}", site_id="999"), "site 999 not found")
    missing = runner.invoke(
        app, ["calendar", "set", "--site", site, "--file", str(tmp_path / "none.json")]
    )
    _refused(missing, "cannot read")
    assert _calendar_row(env, world.a.site_id) is None  # nothing was saved
    _refused(runner.invoke(app, ["calendar", "show", "--site", "999"]), "site 999 not found")


def test_orders_add_list_delete(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import select

    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.models import ProductionOrder

    runtime = Runtime(env)
    world = seed_world(runtime)
    runtime.close()
    runner = CliRunner()
    machine = str(world.a.machine_id)
    order = [
        "orders",
        "add",
        "--machine",
        machine,
        "--order-number",
        "PO-7",
        "--product",
        "cap 28 mm",
        "--ideal-cycle-time",
        "12.5",
        "--units-per-cycle",
        "4",
        "--quantity",
        "2000",
        "--from",
        "2026-11-23T08:00",
        "--to",
        "2026-11-23T16:00",
    ]
    added = runner.invoke(app, order)
    assert added.exit_code == 0, added.output
    runtime = Runtime(env)
    with session_scope(runtime.sessions) as session:
        rows = session.scalars(select(ProductionOrder)).all()
        assert len(rows) == 1
        row = rows[0]
        order_id = row.id
        assert (row.machine_id, row.order_number, row.product) == (
            world.a.machine_id,
            "PO-7",
            "cap 28 mm",
        )
        assert (row.ideal_cycle_time_s, row.units_per_cycle, row.planned_quantity) == (
            12.5,
            4,
            2000,
        )
        assert row.planned_start == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # 08:00 Shanghai
        assert row.planned_end == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    runtime.close()

    listed = runner.invoke(app, ["orders", "list", "--machine", machine])
    assert listed.exit_code == 0, listed.output
    assert "PO-7" in listed.output and "2026-11-23 08:00" in listed.output
    other = runner.invoke(app, ["orders", "list", "--machine", str(world.b.machine_id)])
    assert other.exit_code == 0 and "PO-7" not in other.output

    def with_option(option: str, value: str) -> list[str]:
        args = list(order)
        args[args.index(option) + 1] = value
        return args

    _refused(
        runner.invoke(app, with_option("--to", "2026-11-23T07:00")), "--to must be after --from"
    )
    _refused(runner.invoke(app, with_option("--quantity", "0")), "--quantity")
    _refused(runner.invoke(app, with_option("--ideal-cycle-time", "0")), "--ideal-cycle-time")
    _refused(runner.invoke(app, with_option("--from", "yesterday")), "--from", "yesterday")
    _refused(runner.invoke(app, with_option("--machine", "999")), "machine 999 not found")

    deleted = runner.invoke(app, ["orders", "delete", str(order_id)])
    assert deleted.exit_code == 0, deleted.output
    runtime = Runtime(env)
    with session_scope(runtime.sessions) as session:
        assert session.scalars(select(ProductionOrder)).all() == []  # the refused ones too
    runtime.close()
    _refused(
        runner.invoke(app, ["orders", "delete", str(order_id)]),
        f"production order {order_id} not found",
    )


def test_stops_assign_a_reason(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import select

    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.models import DowntimeReason, StopReason
    from support.production import write_worked_shift

    runtime = Runtime(env)
    world = seed_world(runtime)
    write_worked_shift(runtime.store, world.a.device_id)
    runtime.close()
    runner = CliRunner()
    window = ["--from", "2026-11-23T08:00", "--to", "2026-11-23T16:00"]
    listed = runner.invoke(app, ["stops", "list", *window])
    assert listed.exit_code == 0, listed.output
    stop_ids = re.findall(r"\d+@2026-11-23T[\d:]+\+08:00", listed.output)
    first = f"{world.a.machine_id}@2026-11-23T11:20:00+08:00"  # down 200-230 min into the shift
    assert stop_ids[0] == first and len(stop_ids) == 2

    assigned = runner.invoke(
        app, ["stops", "assign", first, "--reason", "brk.mech", "--comment", "bearing"]
    )
    assert assigned.exit_code == 0, assigned.output
    runtime = Runtime(env)
    with session_scope(runtime.sessions) as session:
        row, code = session.execute(
            select(StopReason, DowntimeReason.code).join(
                DowntimeReason, DowntimeReason.id == StopReason.reason_id
            )
        ).one()
        assert (row.machine_id, code, row.comment) == (world.a.machine_id, "BRK.MECH", "bearing")
        assert row.stop_start == datetime(2026, 11, 23, 3, 20, tzinfo=UTC)
    runtime.close()
    listed = runner.invoke(app, ["stops", *window])  # the list without a command, as before
    assert listed.exit_code == 0, listed.output
    assert "BRK.MECH" in listed.output and "bearing" in listed.output
    assert listed.output.count("awaiting reason") == 1  # the other stop

    _refused(runner.invoke(app, ["stops", "assign", first, "--reason", "NOPE"]), "--reason")
    _refused(
        runner.invoke(app, ["stops", "assign", first.replace("11:20", "11:21"), "--reason", "BRK"]),
        "no stop starting at",
    )
    _refused(runner.invoke(app, ["stops", "assign", "11:20", "--reason", "BRK"]), "STOP_ID")
    _refused(
        runner.invoke(app, ["stops", "assign", "999@2026-11-23T11:20:00+08:00", "--reason", "BRK"]),
        "machine 999 not found",
    )
    long = runner.invoke(app, ["stops", "assign", first, "--reason", "BRK", "--comment", "x" * 501])
    _refused(long, "--comment")
    _refused(runner.invoke(app, ["stops", "list", "--from", "soon", "--to", "later"]), "--from")


def test_alarm_lifecycle_commands(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.alarms import Alarm
    from clusterbrain.production.models import AlarmRecord

    runtime = Runtime(env)
    world = seed_world(runtime)
    alarm_id = _seed_alarm(runtime, world)
    runtime.close()
    runner = CliRunner()
    ident = str(alarm_id)

    def stored() -> tuple[str, Alarm]:
        runtime = Runtime(env)
        try:
            with session_scope(runtime.sessions) as session:
                record = session.get(AlarmRecord, alarm_id)
                assert record is not None
                return record.state, Alarm.from_dict(record.document)
        finally:
            runtime.close()

    acked = runner.invoke(app, ["alarms", "ack", ident, "--comment", "seen it"])
    assert acked.exit_code == 0, acked.output
    assert "ack_active" in acked.output
    state, alarm = stored()
    assert state == "ack_active" and alarm.acknowledged
    assert (alarm.audit[-1].event, alarm.audit[-1].user, alarm.audit[-1].detail) == (
        "acknowledge",
        "admin",
        "seen it",
    )
    _refused(runner.invoke(app, ["alarms", "ack", ident]), "nothing to acknowledge")

    shelved = runner.invoke(app, ["alarms", "shelve", ident, "--minutes", "30", "--reason", "fix"])
    assert shelved.exit_code == 0, shelved.output
    state, alarm = stored()
    assert state == "shelved" and alarm.shelved_until_us is not None
    assert abs(alarm.shelved_until_us - alarm.audit[-1].ts_us - 30 * 60 * 1_000_000) < 5_000_000
    assert "fix" in alarm.audit[-1].detail
    assert runner.invoke(app, ["alarms", "unshelve", ident]).exit_code == 0
    assert stored()[0] == "ack_active"
    _refused(runner.invoke(app, ["alarms", "unshelve", ident]), "not shelved")
    _refused(runner.invoke(app, ["alarms", "shelve", ident, "--minutes", "0"]), "shelf")

    assert runner.invoke(app, ["alarms", "suppress", ident, "--comment", "stop"]).exit_code == 0
    assert stored()[0] == "suppressed"
    _refused(runner.invoke(app, ["alarms", "suppress", ident]), "already suppressed")
    assert runner.invoke(app, ["alarms", "unsuppress", ident]).exit_code == 0
    assert stored()[0] == "ack_active"

    shown = runner.invoke(app, ["alarms", "show", ident])
    assert shown.exit_code == 0, shown.output
    for event in ("acknowledge", "seen it", "shelve", "unshelve", "suppress", "unsuppress"):
        assert event in shown.output
    _refused(runner.invoke(app, ["alarms", "ack", "999"]), "alarm 999 not found")
    _refused(runner.invoke(app, ["alarms", "show", "999"]), "alarm 999 not found")


def test_export_commands_write_csv_and_excel(env: Settings, tmp_path: Path) -> None:
    import csv
    import io

    import openpyxl

    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.models import AlarmRule
    from clusterbrain.telemetry.decode import PointColumns
    from support.production import write_worked_shift

    runtime = Runtime(env)
    world = seed_world(runtime)
    write_worked_shift(runtime.store, world.a.device_id)
    _plan_worked_machine(runtime, world)
    with session_scope(runtime.sessions) as session:
        session.add(
            AlarmRule(
                enterprise_id=world.a.enterprise_id,
                device_id=world.a.device_id,
                name="hot 过热",
                definition={"type": "threshold", "tag": "temperature", "op": ">", "limit": 250},
                priority="high",
            )
        )
    runtime.alarms.reload()
    columns = PointColumns()
    for n, value in enumerate((300.0, 200.0, 300.0)):
        at = int(datetime(2026, 11, 23, 1, n, tzinfo=UTC).timestamp() * 1e6)
        columns.append(world.a.device_id, "temperature", at, value, None, 0)
    runtime.alarms.process(columns.to_table())
    runtime.close()
    span = ["--from", "2026-11-23", "--to", "2026-11-25"]
    machine = ["--machine", str(world.a.machine_id)]

    kpis = tmp_path / "kpis.csv"
    result = CliRunner().invoke(app, ["export", "kpis", *machine, *span, "-o", str(kpis)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(kpis.read_text(encoding="utf-8-sig"))))
    worked = [r for r in rows if r["from"] == "2026-11-23T00:00:00+00:00"]  # 08:00 in Shanghai
    assert len(worked) == 1 and abs(float(worked[0]["oee"]) - 19 / 24) < 1e-9
    assert f"wrote {len(rows)} rows" in result.stderr

    workbook = tmp_path / "states.xlsx"
    result = CliRunner().invoke(app, ["export", "states", *machine, *span, "-o", str(workbook)])
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(workbook, read_only=True).active
    assert sheet is not None
    states = [row[2] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert "running" in states and "unplanned_down" in states

    device = ["--device", world.a.device_id, "--tag", "good_count", "--tag", "state"]
    result = CliRunner().invoke(app, ["export", "telemetry", *device, *span, "-o", "-"])
    assert result.exit_code == 0, result.stderr
    points = list(csv.DictReader(io.StringIO(result.stdout_bytes.decode("utf-8-sig"))))
    assert len(points) == 2 * 481 and {p["tag"] for p in points} == {"good_count", "state"}

    journal = tmp_path / "alarms.csv"
    result = CliRunner().invoke(app, ["export", "alarms", *span, "-o", str(journal)])
    assert result.exit_code == 0, result.output
    events = list(csv.DictReader(io.StringIO(journal.read_text(encoding="utf-8-sig"))))
    assert [e["event"] for e in events] == [
        "condition_active",
        "condition_cleared",
        "condition_active",
    ]
    assert {e["rule"] for e in events} == {"hot 过热"}

    _refused(
        CliRunner().invoke(app, ["export", "kpis", *machine, *span, "-o", "k.pdf"]), "--output"
    )
    _refused(
        CliRunner().invoke(
            app,
            [
                "export",
                "states",
                *machine,
                "--from",
                "2026-11-25",
                "--to",
                "2026-11-23",
                "-o",
                "s.csv",
            ],
        ),
        "--to",
    )
    _refused(
        CliRunner().invoke(
            app, ["export", "telemetry", "--device", "nope", "--tag", "x", *span, "-o", "-"]
        )
    )


def test_reason_tree_and_report_subscription_commands(env: Settings) -> None:
    runtime = Runtime(env)
    world = seed_world(runtime)
    runtime.close()
    enterprise = ["--enterprise", str(world.a.enterprise_id)]
    listed = CliRunner().invoke(app, ["reasons", "list", *enterprise])
    assert listed.exit_code == 0, listed.output
    assert "BRK.HYD" in listed.output and "设备故障" in listed.output  # the standard tree
    added = CliRunner().invoke(
        app,
        [
            "reasons", "add", *enterprise, "--code", "BRK.HYD.LEAK", "--parent", "BRK.HYD",
            "--name-en", "Hydraulic leak", "--name-zh", "液压泄漏", "--category", "unplanned_down",
        ],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    reason_id = int(re.search(r"downtime reason (\d+)", added.output).group(1))  # type: ignore[union-attr]
    tree = CliRunner().invoke(app, ["reasons", "list", *enterprise]).output
    row = next(line for line in tree.splitlines() if "BRK.HYD.LEAK" in line)
    assert "液压泄漏" in row and "BRK.HYD " in row  # its parent's code
    other = CliRunner().invoke(app, ["reasons", "list", "--enterprise", str(world.b.enterprise_id)])
    assert "BRK.HYD.LEAK" not in other.output
    retired = CliRunner().invoke(app, ["reasons", "edit", str(reason_id), "--inactive"])
    assert retired.exit_code == 0 and "no" in retired.output.splitlines()[-2]
    _refused(
        CliRunner().invoke(
            app,
            [
                "reasons",
                "add",
                *enterprise,
                "--code",
                "bad code",
                "--name-en",
                "x",
                "--name-zh",
                "x",
                "--category",
                "unplanned_down",
            ],
        ),
        "--code",
    )
    _refused(CliRunner().invoke(app, ["reasons", "list", "--enterprise", "999"]), "--enterprise")

    subscribed = CliRunner().invoke(
        app,
        ["reports", "subscribe", "--site", str(world.a.site_id), "--email", "chang@lamps.test"],
    )
    assert subscribed.exit_code == 0, subscribed.output
    assert "chang@lamps.test" in CliRunner().invoke(app, ["reports", "list"]).output
    _refused(
        CliRunner().invoke(
            app, ["reports", "subscribe", "--site", str(world.a.site_id), "--email", "nope"]
        ),
        "--email",
    )
    subscription = int(re.search(r"subscription (\d+)", subscribed.output).group(1))  # type: ignore[union-attr]
    removed = CliRunner().invoke(app, ["reports", "unsubscribe", str(subscription)])
    assert removed.exit_code == 0
    assert "chang@lamps.test" not in CliRunner().invoke(app, ["reports", "list"]).output


def test_simulate_runs_beside_a_process_that_holds_the_duckdb_store(
    env: Settings, monkeypatch: pytest.MonkeyPatch, mosquitto: MosquittoProcess
) -> None:
    """`clusterbrain serve` keeps the DuckDB file of its var_dir open, which locks it against
    other processes; provisioning the simulated cluster must not need it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path;"
            "from clusterbrain.telemetry.duckdb.store import DuckDBStore;"
            f"Path({str(env.var_dir)!r}).mkdir(parents=True);"
            f"store = DuckDBStore(Path({str(env.resolved_duckdb_path())!r}));"
            "print('open', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        monkeypatch.setenv("CLUSTERBRAIN_MQTT_PORT", str(mosquitto.port))
        peer = MqttPeer(mosquitto.host, mosquitto.port)
        peer.connect()
        peer.subscribe("cb/v1/+/telemetry")
        arguments = ["simulate", "--enterprises", "1", "--machines", "2", "--duration", "1.5"]
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output
        assert set(peer.received_topics()) == {
            "cb/v1/e1-imm-01/telemetry",
            "cb/v1/e1-imm-02/telemetry",
        }
        peer.close()
    finally:
        holder.communicate(timeout=10)


def test_alarm_rule_commands_add_list_edit_delete(env: Settings, tmp_path: Path) -> None:
    from sqlalchemy import select

    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.models import AlarmRule

    runtime = Runtime(env)
    world = seed_world(runtime)
    runtime.close()
    runner = CliRunner()
    device = world.a.device_id

    def stored() -> list[AlarmRule]:
        runtime = Runtime(env)
        try:
            with session_scope(runtime.sessions) as session:
                rules = session.scalars(select(AlarmRule).order_by(AlarmRule.id)).all()
                session.expunge_all()
                return list(rules)
        finally:
            runtime.close()

    threshold = '{"type": "threshold", "tag": "temperature", "op": ">", "limit": 80}'
    added = runner.invoke(
        app,
        [
            "alarms", "rules", "add", "--device", device, "--name", "Oil hot 油温高",
            "--definition", threshold, "--priority", "high", "--email", "a@example.com",
            "--email", "b@example.com",
        ],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    (rule,) = stored()
    assert (rule.name, rule.priority, rule.enterprise_id) == (
        "Oil hot 油温高",
        "high",
        world.a.enterprise_id,
    )
    assert rule.definition["limit"] == 80 and rule.emails == ["a@example.com", "b@example.com"]
    assert "Oil hot 油温高" in added.output

    document = tmp_path / "rule.yaml"
    document.write_text("type: threshold\ntag: temperature\nop: '>'\nlimit: 95\ndeadband: 2\n")
    edited = runner.invoke(
        app, ["alarms", "rules", "edit", str(rule.id), "--definition", f"@{document}"]
    )
    assert edited.exit_code == 0, edited.output
    (changed,) = stored()
    assert changed.definition["limit"] == 95 and changed.definition["deadband"] == 2
    assert (changed.name, changed.priority, changed.emails) == (rule.name, "high", rule.emails)
    assert changed.updated_at > rule.updated_at  # what a running server's engine watches
    assert (
        runner.invoke(app, ["alarms", "rules", "edit", str(rule.id), "--disabled"]).exit_code == 0
    )
    assert not stored()[0].enabled

    listed = runner.invoke(app, ["alarms", "rules", "list", "--device", device])
    assert listed.exit_code == 0 and "Oil hot 油温高" in listed.output and "95" in listed.output
    assert "Oil hot" not in runner.invoke(app, ["alarms", "rules", "list", "--device", "x"]).output

    base = ["alarms", "rules", "add", "--device", device, "--name", "bad"]
    _refused(runner.invoke(app, base), "--definition", "required")
    _refused(runner.invoke(app, [*base, "--definition", "{oops"]), "--definition", "YAML")
    _refused(runner.invoke(app, [*base, "--definition", "@/nowhere.yaml"]), "--definition")
    _refused(
        runner.invoke(app, [*base, "--definition", '{"type": "threshold", "tag": "t"}']),
        "definition",
    )
    _refused(
        runner.invoke(app, [*base, "--definition", threshold, "--priority", "hot"]), "--priority"
    )
    _refused(
        runner.invoke(app, ["alarms", "rules", "add", "--device", "nope", "--name", "x",
                            "--definition", threshold]),
        "nope",
    )  # fmt: skip
    assert len(stored()) == 1  # nothing refused was saved

    deleted = runner.invoke(app, ["alarms", "rules", "delete", str(rule.id)])
    assert deleted.exit_code == 0 and f"alarm rule {rule.id} deleted" in deleted.output
    assert stored() == []
    _refused(runner.invoke(app, ["alarms", "rules", "delete", str(rule.id)]), "not found")


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the click tree under ``group``, as argument paths."""
    paths = [prefix]
    for name, command in getattr(group, "commands", {}).items():
        paths += _command_paths(command, (*prefix, name))
    return paths


def test_every_command_prints_its_help() -> None:
    root = typer.main.get_command(app)
    paths = _command_paths(root)
    assert ("gateway", "discover") in paths and ("alarms", "rules", "add") in paths
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"])
        assert result.exit_code == 0, f"{' '.join(path)} --help: {result.output}{result.exception}"
        assert "Usage" in result.output
