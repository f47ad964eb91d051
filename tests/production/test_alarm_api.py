"""Alarms on the live stream through the API: rules, lifecycle, notifications, faulty rules."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import openpyxl
import orjson
import pytest
from fastapi.testclient import TestClient

from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.db import session_scope
from clusterbrain.production.alarm_engine import DOCUMENT_HISTORY
from clusterbrain.production.models import AlarmRecord
from clusterbrain.telemetry.decode import PointColumns
from support.services import free_port
from support.smtp import SmtpServer
from support.world import World


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        _Hook.received.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", free_port()), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/alarms"
    finally:
        server.shutdown()


def _wait(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()


def _post(client: TestClient, world: World, values: dict[str, Any]) -> None:
    response = client.post(
        f"/api/v1/ingest/{world.a.device_id}/telemetry",
        json={"values": values},
        headers={"Authorization": f"Bearer {world.a.device_secret}"},
    )
    assert response.status_code == 202, response.text


def test_threshold_alarm_raises_acknowledges_clears_and_notifies(
    client: TestClient, world: World, hook: str
) -> None:
    rule = client.post(
        "/api/v1/alarm-rules",
        json={
            "device_id": world.a.device_id,
            "name": "Barrel too hot 料筒超温",
            "priority": "high",
            "definition": {
                "type": "threshold",
                "tag": "temperature",
                "op": ">",
                "limit": 250,
                "deadband": 5,
            },
            "webhook_url": hook,
        },
        headers=world.a.headers,
    )
    assert rule.status_code == 201, rule.text
    _post(client, world, {"temperature": 240.0})
    _post(client, world, {"temperature": 262.5})
    alarms = _wait(lambda: client.get("/api/v1/alarms", headers=world.a.headers).json())
    assert alarms and alarms[0]["state"] == "unack_active" and alarms[0]["priority"] == "high"
    assert _wait(lambda: [n for n in _Hook.received if n["kind"] == "raised"])
    alarm_id = alarms[0]["id"]
    acked = client.post(
        f"/api/v1/alarms/{alarm_id}/acknowledge", json={"comment": "fan"}, headers=world.a.headers
    )
    assert acked.status_code == 200 and acked.json()["state"] == "ack_active"
    again = client.post(f"/api/v1/alarms/{alarm_id}/acknowledge", json={}, headers=world.a.headers)
    assert again.status_code == 409
    _post(client, world, {"temperature": 248.0})  # inside the deadband: still active
    _post(client, world, {"temperature": 230.0})
    cleared = _wait(
        lambda: (
            client.get(f"/api/v1/alarms/{alarm_id}", headers=world.a.headers).json()["state"]
            == "normal"
        )
    )
    assert cleared
    history = client.get(f"/api/v1/alarms/{alarm_id}", headers=world.a.headers).json()["history"]
    assert [h["event"] for h in history][:2] == ["condition_active", "acknowledge"]
    assert client.get(f"/api/v1/alarms/{alarm_id}", headers=world.b.headers).status_code == 404


def test_invalid_rules_are_refused_naming_the_definition(client: TestClient, world: World) -> None:
    bad = client.post(
        "/api/v1/alarm-rules",
        json={
            "device_id": world.a.device_id,
            "name": "evil",
            "definition": {"type": "expression", "expression": "__import__('os').system('ls')"},
        },
        headers=world.a.headers,
    )
    assert bad.status_code == 422 and bad.json()["field"] == "definition"
    foreign = client.post(
        "/api/v1/alarm-rules",
        json={
            "device_id": world.b.device_id,
            "name": "x",
            "definition": {"type": "no_data", "timeout_s": 60},
        },
        headers=world.a.headers,
    )
    assert foreign.status_code == 404 and foreign.json()["field"] == "device_id"


def test_a_failing_rule_is_disabled_with_its_reason_and_others_keep_working(
    client: TestClient, world: World
) -> None:
    def rule(name: str, definition: dict[str, Any]) -> int:
        created = client.post(
            "/api/v1/alarm-rules",
            json={"device_id": world.a.device_id, "name": name, "definition": definition},
            headers=world.a.headers,
        )
        assert created.status_code == 201, created.text
        return int(created.json()["id"])

    broken = rule("ratio", {"type": "expression", "expression": "temperature / count > 2"})
    healthy = rule("hot", {"type": "threshold", "tag": "temperature", "op": ">", "limit": 100})
    _post(client, world, {"temperature": 150.0, "count": 0})
    disabled = _wait(
        lambda: (
            not client.get(f"/api/v1/alarm-rules/{broken}", headers=world.a.headers).json()[
                "enabled"
            ]
        )
    )
    assert disabled
    reason = client.get(f"/api/v1/alarm-rules/{broken}", headers=world.a.headers).json()[
        "disabled_reason"
    ]
    assert "zero" in reason
    alarms = _wait(lambda: client.get("/api/v1/alarms", headers=world.a.headers).json())
    assert [a["rule_id"] for a in alarms] == [healthy]
    _post(client, world, {"temperature": 20.0})  # ingest itself is unaffected
    assert client.get("/health").json()["store"] == "ok"


def test_alarm_e_mail_goes_through_a_real_smtp_server(
    client: TestClient, runtime: Runtime, world: World, tmp_path: Path
) -> None:
    server = SmtpServer(tmp_path).start()
    try:
        runtime.settings.smtp_port = server.port
        created = client.post(
            "/api/v1/alarm-rules",
            json={
                "device_id": world.a.device_id,
                "name": "Line stopped 停线",
                "priority": "critical",
                "definition": {
                    "type": "state_duration",
                    "tag": "state",
                    "state": "down",
                    "min_duration_s": 0,
                },
                "emails": ["shift-lead@lamps.test"],
            },
            headers=world.a.headers,
        )
        assert created.status_code == 201, created.text
        _post(client, world, {"state": "down"})
        [message] = server.messages()
        assert message["To"] == "shift-lead@lamps.test"
        assert "raised" in str(message["Subject"]) and "critical" in str(message["Subject"])
    finally:
        server.stop()


def _hot_rule(
    client: TestClient, world: World, name: str, limit: float, priority: str = "medium"
) -> int:
    """A threshold rule ``temperature > limit`` on tenant A's device; returns its id."""
    created = client.post(
        "/api/v1/alarm-rules",
        json={
            "device_id": world.a.device_id,
            "name": name,
            "priority": priority,
            "definition": {"type": "threshold", "tag": "temperature", "op": ">", "limit": limit},
        },
        headers=world.a.headers,
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def test_alarm_events_export_as_csv_and_xlsx(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    _hot_rule(client, world, "Barrel too hot 料筒超温", 250, priority="high")
    _post(client, world, {"temperature": 262.5})
    alarms = _wait(lambda: client.get("/api/v1/alarms", headers=world.a.headers).json())
    alarm_id = alarms[0]["id"]
    acked = client.post(
        f"/api/v1/alarms/{alarm_id}/acknowledge",
        json={"comment": "风扇已换"},
        headers=world.a.headers,
    )
    assert acked.status_code == 200
    now = datetime.now(UTC)
    span = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }
    response = client.get("/api/v1/alarms/export", params=span, headers=world.a.headers)
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["event"] for r in rows] == ["condition_active", "acknowledge"]
    assert rows[1]["detail"] == "风扇已换" and rows[1]["to_state"] == "ack_active"
    assert {r["rule"] for r in rows} == {"Barrel too hot 料筒超温"}
    assert rows[0]["at"] <= rows[1]["at"]
    # a range before the alarm holds nothing; another enterprise sees nothing of it
    earlier = {
        "from": (now - timedelta(days=2)).isoformat(),
        "to": (now - timedelta(days=1)).isoformat(),
    }
    assert client.get(
        "/api/v1/alarms/export", params=earlier, headers=world.a.headers
    ).content.decode("utf-8-sig").splitlines() == [
        ",".join(
            (
                "at",
                "alarm_id",
                "rule",
                "device_id",
                "priority",
                "event",
                "from_state",
                "to_state",
                "user",
                "detail",
            )
        )
    ]
    foreign = client.get("/api/v1/alarms/export", params=span, headers=world.b.headers)
    assert len(foreign.content.decode("utf-8-sig").splitlines()) == 1
    other_device = client.get(
        "/api/v1/alarms/export",
        params={**span, "device_id": world.a.device_id},
        headers=world.b.headers,
    )
    assert other_device.status_code == 404
    xlsx = client.get(
        "/api/v1/alarms/export", params={**span, "format": "xlsx"}, headers=world.a.headers
    )
    target = tmp_path / "alarms.xlsx"
    target.write_bytes(xlsx.content)
    sheet = openpyxl.load_workbook(target, read_only=True).active
    assert sheet is not None and sheet.max_row == 3
    naive = client.get(
        "/api/v1/alarms/export",
        params={"from": "2026-01-01T00:00:00", "to": span["to"]},
        headers=world.a.headers,
    )
    assert naive.status_code == 422 and "from" in naive.text


def test_a_long_lived_alarm_keeps_its_whole_journal_and_a_short_document(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    _hot_rule(client, world, "Flapping 反复报警", 250)
    flapping = [300.0 - 100.0 * (n % 2) for n in range(80)]  # 40 raised, 40 cleared
    runtime.alarms.process(_temperatures(world, 0, *flapping))
    alarms = client.get(
        "/api/v1/alarms", params={"include_normal": True}, headers=world.a.headers
    ).json()
    assert len(alarms) == 1 and alarms[0]["occurrence"] == 40
    assert len(alarms[0]["history"]) == DOCUMENT_HISTORY
    with session_scope(runtime.sessions) as session:
        record = session.get(AlarmRecord, alarms[0]["id"])
        assert record is not None and len(record.document["audit"]) == DOCUMENT_HISTORY
    span = {"from": "2026-03-02T00:00:00+00:00", "to": "2026-03-03T00:00:00+00:00"}
    exported = client.get("/api/v1/alarms/export", params=span, headers=world.a.headers)
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [r["event"] for r in rows] == ["condition_active", "condition_cleared"] * 40
    assert rows[-1]["at"] == "2026-03-02T00:01:19+00:00"


def test_a_new_rule_is_seen_even_if_the_engine_reloads_at_once(
    client: TestClient, runtime: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine may read the rules the moment it is told they changed; the rule must be
    committed by then, or the engine keeps a rule set without it until the next change."""
    engine = runtime.alarms
    original = engine.reload

    def reload_and_read_now() -> None:
        original()
        engine._ensure_rules()

    monkeypatch.setattr(engine, "reload", reload_and_read_now)
    _hot_rule(client, world, "hot", 10)
    assert world.a.device_id in engine._rulesets


def _temperatures(world: World, start_s: int, *values: float) -> Any:
    columns = PointColumns()
    base_us = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1e6)
    for n, value in enumerate(values):
        columns.append(
            world.a.device_id, "temperature", base_us + (start_s + n) * 10**6, value, None, 0
        )
    return columns.to_table()


def test_an_active_alarm_still_clears_after_the_rules_are_edited(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    """Editing any rule rebuilds the engine's rule sets; conditions must carry over."""

    def states() -> dict[str, str]:
        alarms = client.get(
            "/api/v1/alarms", params={"include_normal": True}, headers=world.a.headers
        ).json()
        return {a["rule_name"]: a["state"] for a in alarms}

    hot = _hot_rule(client, world, "hot", 250)
    runtime.alarms.process(_temperatures(world, 0, 300.0))
    assert states() == {"hot": "unack_active"}
    _hot_rule(client, world, "very hot", 400)  # an unchanged rule keeps its evaluator
    runtime.alarms.process(_temperatures(world, 1, 200.0))
    assert states() == {"hot": "unack_rtn"}
    runtime.alarms.process(_temperatures(world, 2, 300.0))
    assert states()["hot"] == "unack_active"
    edited = client.put(
        f"/api/v1/alarm-rules/{hot}",
        json={
            "device_id": world.a.device_id,
            "name": "hot",
            "definition": {"type": "threshold", "tag": "temperature", "op": ">", "limit": 260},
        },
        headers=world.a.headers,
    )
    assert edited.status_code == 200
    runtime.alarms.process(_temperatures(world, 3, 200.0))  # a changed rule resumes as active
    assert states()["hot"] == "unack_rtn"


def test_rules_changed_by_another_process_are_picked_up_at_the_next_tick(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    """The shell edits rules in the database without telling the server's engine; the engine
    notices at its next tick (every second) and evaluates the rules as they are now."""
    from clusterbrain.production.models import AlarmRule

    def states() -> dict[str, str]:
        alarms = client.get(
            "/api/v1/alarms", params={"include_normal": True}, headers=world.a.headers
        ).json()
        return {a["rule_name"]: a["state"] for a in alarms}

    engine = runtime.alarms
    hot = _hot_rule(client, world, "hot", 250)
    engine.tick(int(time.time() * 1e6))
    with session_scope(runtime.sessions) as session:  # as `clusterbrain alarms rules edit` does
        rule = session.get(AlarmRule, hot)
        assert rule is not None
        rule.definition = {"type": "threshold", "tag": "temperature", "op": ">", "limit": 350}
    engine.tick(int(time.time() * 1e6))
    engine.process(_temperatures(world, 0, 300.0))
    assert states() == {}  # the edited limit holds, not the one loaded before
    with session_scope(runtime.sessions) as session:  # as `clusterbrain alarms rules add` does
        session.add(
            AlarmRule(
                enterprise_id=world.a.enterprise_id,
                device_id=world.a.device_id,
                name="warm",
                definition={"type": "threshold", "tag": "temperature", "op": ">", "limit": 280},
            )
        )
    engine.tick(int(time.time() * 1e6))
    engine.process(_temperatures(world, 1, 300.0))
    assert states() == {"warm": "unack_active"}
    with session_scope(runtime.sessions) as session:
        session.delete(session.get(AlarmRule, hot))
    engine.tick(int(time.time() * 1e6))
    assert [int(r) for r in engine._rule_device] != [] and str(hot) not in engine._rule_device
