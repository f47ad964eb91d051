"""The gateway end to end: a simulated Modbus server read by the gateway, published through a
secured mosquitto to the platform's ingest, stored under the field device's id; the uplink cut
for a minute loses nothing; another gateway cannot publish for the device."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient
from paho.mqtt.enums import MQTTProtocolVersion

from clusterbrain.api.app import create_app
from clusterbrain.api.runtime import Runtime
from clusterbrain.connectors.gateway.config import parse_config
from clusterbrain.connectors.gateway.protocols import register_builtin
from clusterbrain.connectors.gateway.runner import HEALTH_TAGS, Gateway
from clusterbrain.platform.settings import Settings
from clusterbrain.sim.modbus_server import BackgroundServer
from support.fixtures_mqtt import MqttPeer
from support.mosquitto import MosquittoProcess
from support.services import free_port
from support.world import World, seed_world

pytestmark = pytest.mark.mosquitto
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
def platform(tmp_path: Path, mosquitto_dynsec: MosquittoProcess) -> Iterator[Runtime]:
    admin_user, admin_password = mosquitto_dynsec.admin_credentials
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
        mqtt_port=mosquitto_dynsec.port,
        mqtt_username="cb-ingest",
        mqtt_password="ingest-secret",
        mqtt_client_id=f"ingest-{tmp_path.name}",
        broker_auth="dynsec",
        broker_admin_username=admin_user,
        broker_admin_password=admin_password,
        console=False,  # NiceGUI mounts on one app per process; these tests need the API only
    )
    runtime = Runtime(settings)
    runtime.start_ingest(mqtt=True)
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def modbus() -> Iterator[BackgroundServer]:
    with BackgroundServer(port=free_port(), seed=5) as server:
        yield server


@dataclass
class Registered:
    world: World
    api: TestClient
    gateway_secret: str
    field_tags: list[str]


def _register(platform: Runtime, modbus: BackgroundServer) -> Registered:
    world = seed_world(platform)
    api = TestClient(create_app(platform))
    headers = world.a.headers
    units: Any = modbus.server.gateway_config()["devices"]
    tags = [t["tag"] for unit in units for t in unit["tags"]]
    bits = {
        t["tag"]
        for unit in units
        for t in unit["tags"]
        if t["table"] in ("coil", "discrete_input") or t["type"] == "bits"
    }
    writable = {t["tag"]: t for unit in units for t in unit["tags"] if t.get("writable")}
    field_profile = {
        "name": "Compressor room (Modbus)",
        "tags": [
            {
                "name": t,
                "data_type": "bool" if t in bits else "float",
                "writable": t in writable,
                # wider than the gateway's own limits, so that the gateway's check is tested too
                **({"min_value": 0, "max_value": 20} if t == "pressure_setpoint" else {}),
            }
            for t in tags
        ],
    }
    gateway_profile = {
        "name": "Edge gateway",
        "tags": [{"name": t, "data_type": "float"} for t in HEALTH_TAGS],
    }
    ids = {}
    for key, body in (("field", field_profile), ("gateway", gateway_profile)):
        response = api.post("/api/v1/device-profiles", json=body, headers=headers)
        assert response.status_code == 201, response.text
        ids[key] = response.json()["id"]
    gateway = api.post(
        "/api/v1/devices",
        json={"profile_id": ids["gateway"], "device_id": "gw-hall-1"},
        headers=headers,
    )
    assert gateway.status_code == 201, gateway.text
    field = api.post(
        "/api/v1/devices",
        json={"profile_id": ids["field"], "device_id": "room-1", "gateway_id": "gw-hall-1"},
        headers=headers,
    )
    assert field.status_code == 201, field.text
    assert field.json()["device"]["gateway_id"] == "gw-hall-1"
    return Registered(world, api, gateway.json()["secret"], tags)


def _config_file(
    tmp_path: Path, broker: MosquittoProcess, modbus: BackgroundServer, secret: str, poll_s: float
) -> Path:
    document = {
        "gateway": {"id": "gw-hall-1", "secret": secret},
        "uplink": {"port": broker.port, "publish_interval_s": 0.1, "reconnect_max_s": 2},
        "spool": {"path": "spool", "max_mb": 64},
        "metrics": {"port": free_port()},
        "health_interval_s": 1,
        "devices": [
            {
                "id": "room-1",
                "protocol": "modbus",
                "modbus": modbus.server.gateway_config(poll_interval_ms=poll_s * 1000),
            }
        ],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class Running:
    """The gateway on its own event loop in a thread, as ``clusterbrain gateway`` runs it."""

    def __init__(self, config_path: Path) -> None:
        register_builtin()
        self.gateway = Gateway(parse_config(config_path.read_text(), config_path))
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        while self._stop is None:
            time.sleep(0.01)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await self.gateway.run(self._stop)

        self._loop.run_until_complete(main())

    def stop(self) -> None:
        stop = self._stop
        assert stop is not None
        self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive()


def _stored(platform: Runtime, device: str, tags: list[str]) -> Any:
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(hours=1)
    return platform.store.query_range(device, tags, start, end)


def _wait(condition: Any, timeout: float, what: str, gateway: Gateway | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    state = ""
    if gateway is not None:
        uplink = gateway.uplink
        state = (
            f"; uplink connected={uplink.connected} published={uplink.published} "
            f"error={uplink.last_error!r}; spool pending={gateway.spool.pending}; "
            f"sources={[(n, s.counters) for n, s in gateway.sources.items()]}"
        )
    raise AssertionError(f"timed out waiting for {what}{state}")


def test_field_data_reaches_the_platform_under_the_device_id_with_health_and_metrics(
    tmp_path: Path, platform: Runtime, mosquitto_dynsec: MosquittoProcess, modbus: BackgroundServer
) -> None:
    registered = _register(platform, modbus)
    running = Running(
        _config_file(tmp_path, mosquitto_dynsec, modbus, registered.gateway_secret, 0.2)
    )
    try:
        _wait(
            lambda: len(platform.store.latest("room-1")) >= len(registered.field_tags),
            30,
            "field data",
            running.gateway,
        )
        latest = {v.tag: v for v in platform.store.latest("room-1")}
        assert "discharge_pressure" in latest or "voltage_l1" in latest

        def reads() -> float:
            found = platform.store.latest("gw-hall-1", ["reads"])
            return float(found[0].value or 0) if found else 0.0

        _wait(lambda: reads() > 0, 30, "gateway health")
        port = running.gateway.metrics_port
        assert port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'cb_gateway_source_reads_total{device="room-1"}' in metrics
        assert "cb_gateway_spool_pending" in metrics

        # another gateway of the same enterprise may not publish the device's data
        other = registered.api.post(
            "/api/v1/devices",
            json={"profile_id": registered.world.a.profile_id, "device_id": "gw-other"},
            headers=registered.world.a.headers,
        ).json()
        peer = MqttPeer(
            "127.0.0.1", mosquitto_dynsec.port, "gw-other", other["secret"],
            client_id="gw-other", protocol=MQTTProtocolVersion.MQTTv5,
        )  # fmt: skip
        assert not peer.connect().is_failure
        forged = orjson.dumps({"values": {registered.field_tags[0]: 1.0}})
        assert not peer.publish("cb/v1/gw-other/gateway/room-1/telemetry", forged).is_failure
        peer.close()

        def refused() -> bool:
            response = registered.api.get(
                "/api/v1/dead-letters", headers=registered.world.a.headers
            )
            return any(d["reason"] == "not_behind_gateway" for d in response.json())

        _wait(refused, 15, "the forged message's dead letter")
    finally:
        running.stop()


def test_a_minute_without_uplink_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, platform: Runtime, mosquitto_dynsec: MosquittoProcess, modbus: BackgroundServer
) -> None:
    registered = _register(platform, modbus)
    tags = registered.field_tags
    # 10 ms polls of every unit: about 1,000 values a second in all
    running = Running(
        _config_file(tmp_path, mosquitto_dynsec, modbus, registered.gateway_secret, 0.01)
    )
    gateway = running.gateway
    try:
        _wait(lambda: platform.store.latest("room-1"), 30, "first data")
        mosquitto_dynsec.stop()
        cut = time.time()
        time.sleep(60)
        spooled = gateway.spool.pending
        assert spooled > 0 and not gateway.uplink.connected
        mosquitto_dynsec.start()
        back = time.time()
        _wait(lambda: gateway.spool.pending < 50, 120, "the spool to be replayed")
    finally:
        running.stop()
    produced = gateway.readings_of("room-1")
    assert produced > 40_000  # the rate held while the uplink was down

    def all_stored() -> bool:
        return int(_stored(platform, "room-1", tags).num_rows) >= produced

    _wait(all_stored, 120, f"all {produced} readings stored")
    table = _stored(platform, "room-1", tags)
    assert table.num_rows == produced  # exactly once: no reading lost, none stored twice
    stamps = sorted(t.timestamp() for t in table.column("ts").to_pylist())
    rate = len(stamps) / (stamps[-1] - stamps[0])
    during = [s for s in stamps if cut + 1 < s < back - 1]
    assert len(during) > 0.5 * rate * (back - cut - 2)  # kept with the time they were read
    assert gateway.spool.dropped == 0


def _command(api: TestClient, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return api.post("/api/v1/devices/room-1/commands", json=body, headers=headers)


def _settled(api: TestClient, headers: dict[str, str], command_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(api.get(f"/api/v1/commands/{command_id}", headers=headers).json())
        return found["status"] != "sent"

    _wait(done, 30, f"command {command_id} to be settled")
    return found


def test_a_setpoint_reaches_the_machine_and_its_acknowledgement_comes_back(
    tmp_path: Path, platform: Runtime, mosquitto_dynsec: MosquittoProcess, modbus: BackgroundServer
) -> None:
    registered = _register(platform, modbus)
    api, headers = registered.api, registered.world.a.headers
    running = Running(
        _config_file(tmp_path, mosquitto_dynsec, modbus, registered.gateway_secret, 0.2)
    )
    try:
        _wait(lambda: platform.store.latest("room-1", ["pressure_setpoint"]), 30, "first data")
        sent = _command(api, headers, {"tag": "pressure_setpoint", "value": 8.25})
        assert sent.status_code == 202, sent.text
        assert sent.json()["status"] == "sent"
        done = _settled(api, headers, sent.json()["id"])
        assert done["status"] == "succeeded", done
        assert done["requested_by"] == registered.world.a.user_id  # the audit record

        def machine_has_it() -> bool:
            value = platform.store.latest("room-1", ["pressure_setpoint"])[0].value
            return value is not None and abs(value - 8.25) < 1e-6

        _wait(machine_has_it, 15, "the new setpoint read back from the machine")

        # inside the platform's range but outside the gateway's: refused there, with the reason
        refused = _command(api, headers, {"tag": "pressure_setpoint", "value": 12})
        failed = _settled(api, headers, refused.json()["id"])
        assert failed["status"] == "failed" and "12" in failed["reason"], failed

        # refused by the platform before anything is sent
        out_of_range = _command(api, headers, {"tag": "pressure_setpoint", "value": 25})
        assert out_of_range.status_code == 422
        assert out_of_range.json()["field"] == "value"
        read_only = _command(api, headers, {"tag": "discharge_pressure", "value": 1.0})
        assert read_only.status_code == 422 and "not writable" in read_only.json()["detail"]
        viewer = api.post(
            "/api/v1/users",
            json={"username": "night-shift", "role": "operator", "password": "operator-pw"},
            headers=headers,
        )
        assert viewer.status_code == 201, viewer.text
        token = api.post(
            "/api/v1/auth/login", json={"username": "night-shift", "password": "operator-pw"}
        ).json()["token"]
        as_operator = _command(
            api, {"Authorization": f"Bearer {token}"}, {"tag": "pressure_setpoint", "value": 7}
        )
        assert as_operator.status_code == 403
        other = _command(api, registered.world.b.headers, {"tag": "pressure_setpoint", "value": 7})
        assert other.status_code == 404
        history = api.get("/api/v1/devices/room-1/commands", headers=headers).json()
        assert [c["status"] for c in history] == ["failed", "succeeded"]
    finally:
        running.stop()

    # the gateway is gone: nobody answers, and the command times out
    late = _command(api, headers, {"tag": "pressure_setpoint", "value": 7.5, "timeout_s": 1})
    assert late.status_code == 202
    time.sleep(1.5)
    assert _settled(api, headers, late.json()["id"])["status"] == "timed_out"
