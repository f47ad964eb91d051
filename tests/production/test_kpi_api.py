"""KPIs through the API from telemetry in the store, with a calendar and production settings."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clusterbrain.api.runtime import Runtime
from support.production import CALENDAR, MIN, SHIFT_START, write_worked_shift
from support.world import World

T0 = SHIFT_START


def test_machine_kpis_from_stored_telemetry(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    write_worked_shift(runtime.store, world.a.device_id)
    headers = world.a.headers
    put = client.put(f"/api/v1/sites/{world.a.site_id}/calendar", json=CALENDAR, headers=headers)
    assert put.status_code == 200, put.text
    settings = client.put(
        f"/api/v1/machines/{world.a.machine_id}/production-settings",
        json={"ideal_cycle_time_s": 60, "state_rules": {"state_tag": "state"}},
        headers=headers,
    )
    assert settings.status_code == 200, settings.text
    span = {"from": T0.isoformat(), "to": (T0 + 24 * 60 * MIN).isoformat(), "intervals": "true"}
    report = client.get(f"/api/v1/machines/{world.a.machine_id}/kpis", params=span, headers=headers)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["elements"]["planned_busy_time"] == 480 * 60  # the calendar, not the 24 h asked
    kpis = body["kpis"]
    assert kpis["availability"] == pytest.approx(0.875)
    assert kpis["quality_ratio"] == pytest.approx(0.95)
    assert round(kpis["effectiveness"], 3) == 0.952
    assert round(kpis["oee"], 3) == 0.792
    assert body["elements"]["failure_events"] == 2
    assert body["losses"][-1]["remaining_after"] == pytest.approx(kpis["oee"] * 480 * 60)
    assert [i["state"] for i in body["intervals"][:3]] == ["running", "unplanned_down", "running"]
    group = client.get(
        "/api/v1/kpis", params={"from": span["from"], "to": span["to"]}, headers=headers
    )
    assert group.status_code == 200
    assert group.json()["kpis"]["oee"] == pytest.approx(kpis["oee"])
    assert [m["machine_id"] for m in group.json()["machines"]] == [world.a.machine_id]
    periods = client.get(
        f"/api/v1/machines/{world.a.machine_id}/kpis/periods",
        params={"from": span["from"], "to": span["to"], "period": "shift", "source": "raw"},
        headers=headers,
    )
    assert periods.status_code == 200, periods.text
    assert [round(p["kpis"]["oee"], 4) for p in periods.json()] == [round(19 / 24, 4)]
    bad = client.get(
        f"/api/v1/machines/{world.a.machine_id}/kpis/periods",
        params={"from": span["from"], "to": span["to"], "source": "guess"},
        headers=headers,
    )
    assert bad.status_code == 422 and bad.json()["field"] == "source"


def test_calendar_and_settings_validation(client: TestClient, world: World) -> None:
    bad_zone = client.put(
        f"/api/v1/sites/{world.a.site_id}/calendar",
        json={"timezone": "Mars/Olympus"},
        headers=world.a.headers,
    )
    assert bad_zone.status_code == 422 and bad_zone.json()["field"] == "timezone"
    bad_rules = client.put(
        f"/api/v1/machines/{world.a.machine_id}/production-settings",
        json={
            "state_rules": {
                "state_tag": "state",
                "rules": [{"state": "running", "when": {"tag": "p", "gt": 1}}],
            }
        },
        headers=world.a.headers,
    )
    assert bad_rules.status_code == 422
    backwards = client.get(
        f"/api/v1/machines/{world.a.machine_id}/kpis",
        params={"from": "2026-11-24T00:00:00Z", "to": "2026-11-23T00:00:00Z"},
        headers=world.a.headers,
    )
    assert backwards.status_code == 422 and backwards.json()["field"] == "to"


def test_stops_wait_for_reasons_and_feed_the_pareto(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    write_worked_shift(runtime.store, world.a.device_id)
    headers = world.a.headers
    span = {"from": T0.isoformat(), "to": (T0 + 480 * MIN).isoformat()}
    url = f"/api/v1/machines/{world.a.machine_id}/stops"
    stops = client.get(url, params=span, headers=headers).json()
    assert [(s["state"], s["seconds"], s["awaiting_reason"]) for s in stops] == [
        ("unplanned_down", 1800.0, True),
        ("unplanned_down", 1800.0, True),
    ]
    reasons = {
        r["code"]: r["id"] for r in client.get("/api/v1/downtime-reasons", headers=headers).json()
    }
    assigned = client.put(
        f"{url}/reason",
        json={"start": stops[0]["start"], "reason_id": reasons["BRK.HEAT"], "comment": "zone 2"},
        headers=headers,
    )
    assert assigned.status_code == 200, assigned.text
    nowhere = client.put(
        f"{url}/reason",
        json={"start": (T0 + 7 * MIN).isoformat(), "reason_id": reasons["BRK.HEAT"]},
        headers=headers,
    )
    assert nowhere.status_code == 404 and nowhere.json()["field"] == "start"
    foreign_reason = client.get("/api/v1/downtime-reasons", headers=world.b.headers).json()[0]["id"]
    refused = client.put(
        f"{url}/reason",
        json={"start": stops[1]["start"], "reason_id": foreign_reason},
        headers=headers,
    )
    assert refused.status_code == 404 and refused.json()["field"] == "reason_id"
    again = client.get(url, params=span, headers=headers).json()
    assert again[0]["awaiting_reason"] is False and again[0]["comment"] == "zone 2"
    pareto = client.get("/api/v1/downtime-pareto", params=span, headers=headers).json()
    # Equal losses are ordered by reason code.
    assert [(row["reason"], row["seconds"]) for row in pareto] == [
        ("BRK.HEAT", 1800.0),
        ("awaiting_reason", 1800.0),
    ]
    assert pareto[-1]["cumulative_share"] == 1.0
