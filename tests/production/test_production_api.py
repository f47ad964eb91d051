"""Downtime reasons and production orders through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from support.world import World

ORDER = {
    "order_number": "PO-2026-001",
    "product": "LED downlight housing 筒灯外壳",
    "ideal_cycle_time_s": 22.5,
    "units_per_cycle": 4,
    "planned_quantity": 8000,
    "planned_start": "2026-11-25T00:00:00Z",
    "planned_end": "2026-11-26T00:00:00+08:00",
}


def test_standard_reason_tree_is_bilingual_and_editable(client: TestClient, world: World) -> None:
    reasons = client.get("/api/v1/downtime-reasons", headers=world.a.headers).json()
    by_code = {r["code"]: r for r in reasons}
    assert by_code["BRK.MECH"]["name_zh"] == "机械故障"
    assert by_code["BRK.MECH"]["parent_id"] == by_code["BRK"]["id"]
    created = client.post(
        "/api/v1/downtime-reasons",
        json={
            "code": "BRK.NOZZLE",
            "parent_id": by_code["BRK"]["id"],
            "name_en": "Nozzle blocked",
            "name_zh": "射嘴堵塞",
            "category": "unplanned_down",
        },
        headers=world.a.headers,
    )
    assert created.status_code == 201, created.text
    duplicate = client.post(
        "/api/v1/downtime-reasons",
        json={"code": "BRK.NOZZLE", "name_en": "x", "name_zh": "x", "category": "unplanned_down"},
        headers=world.a.headers,
    )
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "code"
    off = client.patch(
        f"/api/v1/downtime-reasons/{created.json()['id']}",
        json={"active": False},
        headers=world.a.headers,
    )
    assert off.json()["active"] is False
    b_codes = {
        r["code"] for r in client.get("/api/v1/downtime-reasons", headers=world.b.headers).json()
    }
    assert "BRK.NOZZLE" not in b_codes and "BRK.MECH" in b_codes


def test_bad_reason_category_names_the_field(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/downtime-reasons",
        json={"code": "X", "name_en": "x", "name_zh": "x", "category": "coffee"},
        headers=world.a.headers,
    )
    assert response.status_code == 422 and response.json()["field"] == "category"


def test_production_orders(client: TestClient, world: World) -> None:
    created = client.post(
        "/api/v1/production-orders",
        json={**ORDER, "machine_id": world.a.machine_id},
        headers=world.a.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["planned_end"].startswith("2026-11-25T16:00:00")
    listed = client.get(
        "/api/v1/production-orders",
        params={"machine_id": world.a.machine_id},
        headers=world.a.headers,
    )
    assert [o["order_number"] for o in listed.json()] == ["PO-2026-001"]
    foreign = client.post(
        "/api/v1/production-orders",
        json={**ORDER, "machine_id": world.b.machine_id},
        headers=world.a.headers,
    )
    assert foreign.status_code == 404 and foreign.json()["field"] == "machine_id"
    backwards = client.post(
        "/api/v1/production-orders",
        json={**ORDER, "machine_id": world.a.machine_id, "planned_end": "2026-11-24T00:00:00Z"},
        headers=world.a.headers,
    )
    assert backwards.status_code == 422
    zero = client.post(
        "/api/v1/production-orders",
        json={**ORDER, "machine_id": world.a.machine_id, "ideal_cycle_time_s": 0},
        headers=world.a.headers,
    )
    assert zero.status_code == 422 and zero.json()["field"] == "ideal_cycle_time_s"
