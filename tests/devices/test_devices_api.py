"""Device registry through the API: one-time secret, rotation, revocation, profiles, status."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from support.world import World


def _ingest(client: TestClient, device_id: str, secret: str, body: object) -> int:
    response = client.post(
        f"/api/v1/ingest/{device_id}/telemetry",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
    )
    return response.status_code


def test_register_shows_secret_once(client: TestClient, world: World) -> None:
    created = client.post(
        "/api/v1/devices",
        json={"profile_id": world.a.profile_id, "machine_id": world.a.machine_id, "name": "meter"},
        headers=world.a.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    device_id, secret = body["device"]["id"], body["secret"]
    assert secret.startswith("cbd_") and body["mqtt"]["username"] == device_id
    assert body["mqtt"]["telemetry_topic"] == f"cb/v1/{device_id}/telemetry"
    assert set(body["sample_payload"]["values"]) <= {"temperature", "count", "running", "state"}
    again = client.get(f"/api/v1/devices/{device_id}", headers=world.a.headers)
    assert again.status_code == 200 and secret not in again.text and 'secret"' not in again.text
    assert _ingest(client, device_id, secret, {"values": {"temperature": 21.5}}) == 202


def test_rotate_and_revoke(client: TestClient, world: World) -> None:
    device, old = world.a.device_id, world.a.device_secret
    assert _ingest(client, device, old, {"values": {"temperature": 1.0}}) == 202
    rotated = client.post(f"/api/v1/devices/{device}/rotate-secret", headers=world.a.headers)
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old
    assert _ingest(client, device, old, {"values": {"temperature": 2.0}}) == 401
    assert _ingest(client, device, new, {"values": {"temperature": 3.0}}) == 202
    revoked = client.post(f"/api/v1/devices/{device}/revoke", headers=world.a.headers)
    assert revoked.json()["revoked"] is True and revoked.json()["online"] is False
    assert _ingest(client, device, new, {"values": {"temperature": 4.0}}) == 401


def test_device_goes_online_after_data(client: TestClient, world: World) -> None:
    url = f"/api/v1/devices/{world.a.device_id}"
    assert client.get(url, headers=world.a.headers).json()["online"] is False
    assert (
        _ingest(client, world.a.device_id, world.a.device_secret, {"values": {"count": 3}}) == 202
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = client.get(url, headers=world.a.headers).json()
        if status["online"]:
            break
        time.sleep(0.2)
    assert status["online"] is True and status["last_seen_at"] is not None


def test_profile_validation_names_fields(client: TestClient, world: World) -> None:
    duplicate = client.post(
        "/api/v1/device-profiles",
        json={"name": "p", "tags": [{"name": "a"}, {"name": "a"}]},
        headers=world.a.headers,
    )
    assert duplicate.status_code == 422 and duplicate.json()["field"] == "tags[1].name"
    bad_name = client.post(
        "/api/v1/device-profiles",
        json={"name": "p", "tags": [{"name": "1bad tag"}]},
        headers=world.a.headers,
    )
    assert bad_name.status_code == 422 and bad_name.json()["field"] == "tags[0].name"
    bad_range = client.post(
        "/api/v1/device-profiles",
        json={"name": "p", "tags": [{"name": "t", "min_value": 5, "max_value": 1}]},
        headers=world.a.headers,
    )
    assert bad_range.json()["field"] == "tags[0].min_value"


def test_profile_in_use_cannot_be_deleted(client: TestClient, world: World) -> None:
    response = client.delete(
        f"/api/v1/device-profiles/{world.a.profile_id}", headers=world.a.headers
    )
    assert response.status_code == 409


def test_device_id_taken_is_conflict(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/devices",
        json={"profile_id": world.a.profile_id, "device_id": world.a.device_id},
        headers=world.a.headers,
    )
    assert response.status_code == 409 and response.json()["field"] == "device_id"


def test_profile_tags_can_be_replaced_and_ingest_follows(client: TestClient, world: World) -> None:
    url = f"/api/v1/device-profiles/{world.a.profile_id}"
    patched = client.patch(
        url,
        json={"tags": [{"name": "pressure", "unit": "bar", "description_zh": "压力"}]},
        headers=world.a.headers,
    )
    assert patched.status_code == 200, patched.text
    assert [t["name"] for t in patched.json()["tags"]] == ["pressure"]
    assert (
        _ingest(client, world.a.device_id, world.a.device_secret, {"values": {"pressure": 3.5}})
        == 202
    )
    assert (
        _ingest(client, world.a.device_id, world.a.device_secret, {"values": {"temperature": 1}})
        == 422
    )
