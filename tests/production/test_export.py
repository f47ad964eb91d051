"""CSV and Excel exports of raw telemetry, KPIs per period and state intervals."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient

from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.export import csv_chunks, write_xlsx
from support.production import CALENDAR, MIN, SHIFT_START, write_worked_shift
from support.world import World

SPAN = {"from": SHIFT_START.isoformat(), "to": (SHIFT_START + 2 * 24 * 60 * MIN).isoformat()}


def _csv(response_bytes: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response_bytes.decode("utf-8-sig"))))


def test_raw_telemetry_export_csv_and_xlsx(
    client: TestClient, runtime: Runtime, world: World, tmp_path: Path
) -> None:
    write_worked_shift(runtime.store, world.a.device_id)
    url = f"/api/v1/devices/{world.a.device_id}/telemetry/export"
    params = {**SPAN, "tag": ["good_count", "state"]}
    response = client.get(url, params=params, headers=world.a.headers)
    assert response.status_code == 200
    assert response.headers["content-disposition"].endswith('.csv"')
    rows = _csv(response.content)
    assert len(rows) == 2 * 481
    assert rows[0]["tag"] == "good_count" and rows[1] == {
        **rows[1],
        "tag": "state",
        "text": "running",
    }
    assert rows[-1]["ts"] >= rows[0]["ts"]
    xlsx = client.get(url, params={**params, "format": "xlsx"}, headers=world.a.headers)
    assert xlsx.status_code == 200
    target = tmp_path / "export.xlsx"
    target.write_bytes(xlsx.content)
    sheet = openpyxl.load_workbook(target, read_only=True).active
    assert sheet is not None and sheet.max_row == 2 * 481 + 1
    foreign = client.get(url, params=params, headers=world.b.headers)
    assert foreign.status_code == 404


def test_kpi_and_state_exports(client: TestClient, runtime: Runtime, world: World) -> None:
    write_worked_shift(runtime.store, world.a.device_id)
    client.put(f"/api/v1/sites/{world.a.site_id}/calendar", json=CALENDAR, headers=world.a.headers)
    client.put(
        f"/api/v1/machines/{world.a.machine_id}/production-settings",
        json={"ideal_cycle_time_s": 60},
        headers=world.a.headers,
    )
    kpis = client.get(
        f"/api/v1/machines/{world.a.machine_id}/kpis/export",
        params={**SPAN, "period": "shift"},
        headers=world.a.headers,
    )
    assert kpis.status_code == 200, kpis.text
    rows = _csv(kpis.content)
    assert len(rows) == 2  # one shift a day
    assert float(rows[0]["oee"]) == pytest.approx(19 / 24)
    assert rows[1]["good"] == "0.0"
    states = client.get(
        f"/api/v1/machines/{world.a.machine_id}/states/export", params=SPAN, headers=world.a.headers
    )
    assert [r["state"] for r in _csv(states.content)][:4] == [
        "running",
        "unplanned_down",
        "running",
        "unplanned_down",
    ]
    bad = client.get(
        f"/api/v1/machines/{world.a.machine_id}/kpis/export",
        params={**SPAN, "period": "year"},
        headers=world.a.headers,
    )
    assert bad.status_code == 422 and bad.json()["field"] == "period"


def test_writers_stream_without_holding_rows(tmp_path: Path) -> None:
    produced = 0

    def rows():  # type: ignore[no-untyped-def]
        nonlocal produced
        for i in range(20_000):
            produced += 1
            yield (i, f"标签{i % 3}")

    chunks = csv_chunks(["n", "tag"], rows())
    first = next(chunks)
    assert produced == 0 and first.startswith("\ufeff".encode())  # nothing read before asked
    next(chunks)
    assert produced <= 5_001
    assert sum(len(c) for c in chunks) > 0 and produced == 20_000
    assert write_xlsx(tmp_path / "a.xlsx", "data", ["n"], ((i,) for i in range(10))) == 10
