"""HTTP ingest: the same payloads, pipeline and dead letters as MQTT; then reading it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from support.world import World


def _post(client: TestClient, world: World, body: bytes) -> dict[str, object]:
    response = client.post(
        f"/api/v1/ingest/{world.a.device_id}/telemetry",
        content=body,
        headers={
            "Authorization": f"Bearer {world.a.device_secret}",
            "Content-Type": "application/json",
        },
    )
    return {"status": response.status_code, **response.json()}


def test_single_and_batched_samples_are_stored(client: TestClient, world: World) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    single = (
        f'{{"ts": "{now.isoformat()}", "values": {{"temperature": 200.5, "state": "running"}}}}'
    )
    assert _post(client, world, single.encode())["accepted_points"] == 2
    batch = ",".join(
        f'{{"ts": "{(now - timedelta(seconds=i)).isoformat()}", "values": {{"count": {i}, "running": true}}}}'
        for i in range(1, 51)
    )
    result = _post(client, world, f"[{batch}]".encode())
    assert result["status"] == 202 and result["accepted_points"] == 100
    latest = client.get(
        f"/api/v1/devices/{world.a.device_id}/telemetry/latest", headers=world.a.headers
    ).json()
    by_tag = {row["tag"]: row for row in latest}
    assert by_tag["temperature"]["value"] == 200.5
    assert by_tag["state"]["text"] == "running"
    assert by_tag["count"]["value"] == 1.0  # the newest sample of the batch
    span = {
        "from": (now - timedelta(minutes=5)).isoformat(),
        "to": (now + timedelta(seconds=1)).isoformat(),
    }
    raw = client.get(
        f"/api/v1/devices/{world.a.device_id}/telemetry/range",
        params={"tag": "count", **span},
        headers=world.a.headers,
    ).json()
    assert raw["source"] == "raw" and len(raw["series"][0]["values"]) == 50
    bucketed = client.get(
        f"/api/v1/devices/{world.a.device_id}/telemetry/range",
        params={"tag": "count", "bucket": "1h", "agg": "count", **span},
        headers=world.a.headers,
    ).json()
    assert bucketed["source"] == "1h" and sum(bucketed["series"][0]["values"]) == 50


def test_bad_input_goes_to_dead_letters_with_reason(client: TestClient, world: World) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    cases = {
        b"{broken": "malformed_json",
        b'{"values": {"nope": 1}}': "unknown_tag",
        b'{"values": {"temperature": "hot"}}': "wrong_type",
        f'{{"ts": "{future}", "values": {{"temperature": 1}}}}'.encode(): "future_timestamp",
        b'{"ts": "1990-01-01T00:00:00Z", "values": {"temperature": 1}}': "bad_timestamp",
        b"[]": "bad_structure",
        b'{"values": {"count": 1.5}}': "wrong_type",
        b"x" * (300 * 1024): "oversized_payload",
    }
    for body, reason in cases.items():
        result = _post(client, world, body)
        assert result["status"] == 422, (body[:40], result)
        assert result["rejected"][0]["reason"] == reason  # type: ignore[index]
    letters = client.get(
        "/api/v1/dead-letters", params={"limit": 50}, headers=world.a.headers
    ).json()
    assert sorted(row["reason"] for row in letters) == sorted(cases.values())
    broken = next(row for row in letters if row["reason"] == "malformed_json")
    assert broken["payload_text"] == "{broken" and broken["device_id"] == world.a.device_id


def test_partly_bad_message_keeps_good_values(client: TestClient, world: World) -> None:
    result = _post(client, world, b'{"values": {"temperature": 5, "bogus": 1}}')
    assert result["status"] == 202 and result["accepted_points"] == 1
    letters = client.get(
        "/api/v1/dead-letters", params={"reason": "unknown_tag"}, headers=world.a.headers
    )
    assert "bogus" in letters.json()[0]["detail"]


def test_out_of_range_is_stored_uncertain(client: TestClient, world: World) -> None:
    assert _post(client, world, b'{"values": {"temperature": 999}}')["accepted_points"] == 1
    latest = client.get(
        f"/api/v1/devices/{world.a.device_id}/telemetry/latest",
        params={"tag": "temperature"},
        headers=world.a.headers,
    ).json()
    assert latest[0]["quality"] == 1


def test_range_query_problems(client: TestClient, world: World) -> None:
    url = f"/api/v1/devices/{world.a.device_id}/telemetry/range"
    swapped = client.get(
        url,
        params={"tag": "count", "from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        headers=world.a.headers,
    )
    assert swapped.status_code == 422 and swapped.json()["field"] == "to"
    bucket = client.get(
        url,
        params={
            "tag": "count",
            "from": "2026-01-01T00:00:00Z",
            "to": "2026-01-02T00:00:00Z",
            "bucket": "7x",
        },
        headers=world.a.headers,
    )
    assert bucket.status_code == 422 and bucket.json()["field"] == "bucket"
    naive = client.get(
        url,
        params={"tag": "count", "from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00Z"},
        headers=world.a.headers,
    )
    assert naive.status_code == 422 and naive.json()["field"] == "from"


def test_metrics_count_ingest(client: TestClient, world: World) -> None:
    _post(client, world, b'{"values": {"temperature": 5}}')
    _post(client, world, b"{broken")
    text = client.get("/metrics").text
    assert 'cb_ingest_messages_total{source="http"} 2.0' in text
    assert 'cb_ingest_dead_letters_total{reason="malformed_json"} 1.0' in text
    assert "cb_ingest_points_stored_total 1.0" in text
    assert client.get("/health").json()["store"] == "ok"
