"""The whole spine on a secured mosquitto: register through the API, connect, store, revoke."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import MQTTProtocolVersion

from clusterbrain.api.app import create_app
from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.settings import Settings
from support.fixtures_mqtt import MqttPeer
from support.mosquitto import MosquittoProcess
from support.world import seed_world

pytestmark = pytest.mark.mosquitto


@pytest.fixture
def secured(tmp_path: Path, mosquitto_dynsec: MosquittoProcess) -> Iterator[Runtime]:
    admin_user, admin_password = mosquitto_dynsec.admin_credentials
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
        mqtt_port=mosquitto_dynsec.port,
        mqtt_username="cb-ingest",
        mqtt_password="ingest-secret",
        mqtt_client_id="secured-ingest",
        broker_auth="dynsec",
        broker_admin_username=admin_user,
        broker_admin_password=admin_password,
    )
    runtime = Runtime(settings)
    runtime.start_ingest(mqtt=True)
    try:
        yield runtime
    finally:
        runtime.close()


def _device(port: int, device_id: str, secret: str) -> MqttPeer:
    return MqttPeer(
        "127.0.0.1",
        port,
        device_id,
        secret,
        client_id=device_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )


def test_registered_device_publishes_through_acls_and_revocation_kicks_it(
    secured: Runtime, mosquitto_dynsec: MosquittoProcess
) -> None:
    assert secured.mqtt is not None and secured.mqtt.connected
    world = seed_world(secured)  # registers dev-a-1 and dev-b-1 through the device service
    client = TestClient(create_app(secured))
    created = client.post(
        "/api/v1/devices",
        json={"profile_id": world.a.profile_id, "device_id": "press-7"},
        headers=world.a.headers,
    ).json()
    device = _device(mosquitto_dynsec.port, "press-7", created["secret"])
    assert not device.connect().is_failure
    payload = orjson.dumps({"values": {"temperature": 42.0}})
    assert not device.publish("cb/v1/press-7/telemetry", payload).is_failure
    # Publishing as another device is refused by the broker and never reaches ingest.
    assert device.publish(f"cb/v1/{world.b.device_id}/telemetry", payload).is_failure
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not secured.store.latest("press-7"):
        time.sleep(0.1)
    assert secured.store.latest("press-7")[0].value == 42.0
    assert secured.store.latest(world.b.device_id) == []

    revoked = client.post("/api/v1/devices/press-7/revoke", headers=world.a.headers)
    assert revoked.status_code == 200
    assert device.disconnected.wait(5)
    again = _device(mosquitto_dynsec.port, "press-7", created["secret"])
    assert again.connect().is_failure


def test_wrong_secret_is_refused_by_the_broker(
    secured: Runtime, mosquitto_dynsec: MosquittoProcess
) -> None:
    world = seed_world(secured)
    assert (
        not _device(mosquitto_dynsec.port, world.a.device_id, world.a.device_secret)
        .connect()
        .is_failure
    )
    assert _device(mosquitto_dynsec.port, world.a.device_id, "cbd_wrong").connect().is_failure
