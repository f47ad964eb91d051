"""Sparkplug B ingest against a real mosquitto and a real Runtime (SQLite and PostgreSQL).

An edge node (a paho client publishing what the codec encodes) announces itself; ClusterBrain
registers its node and device as pending, stores their data once approved, asks for a rebirth on a
lost message, takes devices offline on their deaths and dead-letters what it cannot use.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import MQTTProtocolVersion

from clusterbrain.api.app import create_app
from clusterbrain.api.runtime import Runtime
from clusterbrain.connectors.sparkplug import codec
from clusterbrain.connectors.sparkplug import sparkplug_b_pb2 as pb
from clusterbrain.connectors.sparkplug.codec import REBIRTH_METRIC, DataType, metric
from clusterbrain.connectors.sparkplug.ingest import reason_code
from clusterbrain.devices.broker_auth import DynsecBrokerAuth
from clusterbrain.devices.schemas import DEVICE_ID_PATTERN
from clusterbrain.platform.settings import Settings
from connectors.sparkplug.edge_node import EdgeNode
from support.fixtures_mqtt import MqttPeer
from support.mosquitto import MosquittoProcess
from support.world import World, seed_world

pytestmark = pytest.mark.mosquitto

GROUP = "plant1"
PRESS_KEY = f"{GROUP}/gw1/press"
NODE_KEY = f"{GROUP}/gw1"
T0_MS = (int(time.time()) - 3600) * 1000  # an hour ago: neither before 2000 nor in the future


@pytest.fixture
def settings(tmp_path: Any, metadata_url: str, mosquitto: MosquittoProcess) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=metadata_url,
        console=False,
        mqtt_port=mosquitto.port,
        mqtt_client_id=f"sp-test-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings)
    rt.start_ingest(mqtt=True)
    try:
        assert rt.sparkplug is not None and rt.sparkplug.connected
        yield rt
    finally:
        rt.close()


class Edge:
    """A scripted edge node on the broker, with its NDEATH as will, listening for its NCMD."""

    def __init__(self, broker: MosquittoProcess, group: str = GROUP, edge_node: str = "gw1"):
        self.node = EdgeNode(group, edge_node, timestamp_ms=T0_MS)
        self.peer = MqttPeer(broker.host, broker.port, protocol=MQTTProtocolVersion.MQTTv5)
        will_topic, will_payload = self.node.ndeath()
        self.peer.client.will_set(will_topic, will_payload, qos=1)
        assert not self.peer.connect().is_failure
        assert not self.peer.subscribe(codec.topic(group, "NCMD", edge_node)).is_failure

    def send(self, message: tuple[str, bytes]) -> None:
        assert not self.peer.publish(*message).is_failure

    def birth(self) -> None:
        """NBIRTH with one node metric, DBIRTH of "press" with aliases 1-4."""
        self.send(self.node.nbirth(metric("Uptime", DataType.Int64, 5, alias=10)))
        self.send(
            self.node.dbirth(
                "press",
                metric("Temperature", DataType.Double, 20.5, alias=1),
                metric("Count", DataType.Int32, 7, alias=2),
                metric("Running", DataType.Boolean, True, alias=3),
                metric("Motor/Speed (rpm)", DataType.Float, 1500.0, alias=4),
            )
        )

    def press_data(self, temperature: float, count: int, ts_ms: int) -> None:
        self.send(
            self.node.ddata(
                "press",
                metric("Temperature", DataType.Double, temperature, timestamp_ms=ts_ms),
                metric("Count", DataType.Int32, count, timestamp_ms=ts_ms),
            )
        )

    def close(self) -> None:
        self.peer.close()


@pytest.fixture
def edge(mosquitto: MosquittoProcess, runtime: Runtime) -> Iterator[Edge]:
    node = Edge(mosquitto)
    yield node
    node.close()


def alias_only_ddata(edge: Edge, ts_ms: int) -> tuple[str, bytes]:
    """DDATA of "press" by alias: Temperature (1) with its datatype, Count (2) without."""
    edge.node.seq = (edge.node.seq + 1) % 256
    message = pb.Payload(timestamp=ts_ms, seq=edge.node.seq)
    message.metrics.add(alias=1, timestamp=ts_ms, datatype=DataType.Double, double_value=22.5)
    message.metrics.add(alias=2, timestamp=ts_ms, int_value=9)
    return codec.topic(GROUP, "DDATA", "gw1", "press"), message.SerializeToString()


def wait_until(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def claim(client: TestClient, headers: dict[str, str], group: str = GROUP) -> None:
    response = client.post("/api/v1/sparkplug/groups", json={"group_id": group}, headers=headers)
    assert response.status_code == 201, response.text


def sparkplug_devices(
    client: TestClient, headers: dict[str, str], status: str | None = None
) -> dict[str, dict[str, Any]]:
    params = {"status": status} if status else {}
    response = client.get("/api/v1/sparkplug/devices", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return {d["sparkplug_key"]: d for d in response.json()}


def pending_press(client: TestClient, world: World) -> dict[str, Any]:
    return wait_until(lambda: sparkplug_devices(client, world.a.headers, "pending").get(PRESS_KEY))


def approve(client: TestClient, world: World, device_id: str) -> None:
    response = client.post(f"/api/v1/devices/{device_id}/approve", headers=world.a.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"


def stored(runtime: Runtime, device_id: str, tags: list[str]) -> list[tuple[str, datetime, float]]:
    start = datetime.fromtimestamp(T0_MS / 1000, UTC) - timedelta(hours=1)
    table = runtime.store.query_range(device_id, tags, start, start + timedelta(hours=3))
    return list(zip(*(table.column(c).to_pylist() for c in ("tag", "ts", "value")), strict=True))


def dead_letters(client: TestClient, headers: dict[str, str], reason: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/dead-letters", params={"reason": reason}, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def online(client: TestClient, world: World, device_id: str) -> bool:
    return bool(
        client.get(f"/api/v1/devices/{device_id}", headers=world.a.headers).json()["online"]
    )


def pending_readings(runtime: Runtime) -> float | None:
    return runtime.metrics.registry.get_sample_value(
        "cb_sparkplug_readings_not_stored_total", {"why": "pending"}
    )


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_a_birth_registers_pending_devices_and_approval_stores_their_data(
    client: TestClient, world: World, runtime: Runtime, edge: Edge
) -> None:
    claim(client, world.a.headers)
    edge.birth()

    press = pending_press(client, world)
    node = wait_until(lambda: sparkplug_devices(client, world.a.headers).get(NODE_KEY))
    assert node["status"] == "pending"
    assert re.fullmatch(DEVICE_ID_PATTERN, press["id"]) and press["id"].startswith("sp-")
    assert press["enterprise_id"] == world.a.enterprise_id
    profile = client.get(
        f"/api/v1/device-profiles/{press['profile_id']}", headers=world.a.headers
    ).json()
    assert profile["name"] == f"Sparkplug {PRESS_KEY}"
    assert {t["name"]: t["data_type"] for t in profile["tags"]} == {
        "temperature": "float",
        "count": "int",
        "running": "bool",
        "motor_speed_rpm": "float",
    }
    assert "Motor/Speed (rpm)" in profile["tags"][3]["description_en"]

    # Pending: nothing is stored, but counted (the BIRTHs' 1 + 4 values, then this DDATA's 2).
    edge.press_data(30.0, 10, T0_MS + 500)
    wait_until(lambda: pending_readings(runtime) == 7)
    assert stored(runtime, press["id"], ["temperature"]) == []

    # Another enterprise sees nothing and cannot approve.
    assert sparkplug_devices(client, world.b.headers) == {}
    foreign = client.post(f"/api/v1/devices/{press['id']}/approve", headers=world.b.headers)
    assert foreign.status_code == 404
    assert client.get(f"/api/v1/devices/{press['id']}", headers=world.b.headers).status_code == 404

    approve(client, world, press["id"])
    edge.press_data(21.5, 8, T0_MS + 1000)
    edge.send(alias_only_ddata(edge, T0_MS + 2000))
    rows = wait_until(lambda: len(stored(runtime, press["id"], ["temperature", "count"])) == 4)
    assert rows
    assert stored(runtime, press["id"], ["temperature", "count"]) == [
        ("count", at(T0_MS + 1000), 8.0),
        ("count", at(T0_MS + 2000), 9.0),
        ("temperature", at(T0_MS + 1000), 21.5),
        ("temperature", at(T0_MS + 2000), 22.5),
    ]
    assert sparkplug_devices(client, world.a.headers, "pending").keys() == {NODE_KEY}


def test_a_lost_message_requests_a_rebirth_that_resumes_storage(
    client: TestClient, world: World, runtime: Runtime, edge: Edge
) -> None:
    claim(client, world.a.headers)
    edge.birth()
    press = pending_press(client, world)
    approve(client, world, press["id"])

    edge.node.seq += 1  # a DDATA the broker never saw
    edge.press_data(40.0, 11, T0_MS + 3000)

    command = edge.peer.received()
    assert command.topic == f"spBv1.0/{GROUP}/NCMD/gw1"
    rebirth = codec.decode_payload(command.payload).metric(REBIRTH_METRIC)
    assert rebirth is not None and rebirth.value is True
    gap = wait_until(lambda: dead_letters(client, world.a.headers, "sparkplug_seq_gap"))
    assert gap[0]["device_id"] == press["id"] and "was expected" in gap[0]["detail"]

    edge.press_data(41.0, 12, T0_MS + 4000)  # still awaiting the rebirth: not stored
    wait_until(lambda: dead_letters(client, world.a.headers, "sparkplug_awaiting_rebirth"))
    edge.birth()
    edge.press_data(42.0, 13, T0_MS + 5000)
    wait_until(
        lambda: (
            ("temperature", at(T0_MS + 5000), 42.0) in stored(runtime, press["id"], ["temperature"])
        )
    )
    values = [v for _, _, v in stored(runtime, press["id"], ["temperature"])]
    assert 40.0 not in values and 41.0 not in values
    assert 20.5 in values, "the values of the answering DBIRTH are stored too"


def test_deaths_take_devices_offline_and_a_birth_brings_them_back(
    client: TestClient, world: World, runtime: Runtime, edge: Edge
) -> None:
    claim(client, world.a.headers)
    edge.birth()
    press = pending_press(client, world)
    node = sparkplug_devices(client, world.a.headers)[NODE_KEY]
    approve(client, world, press["id"])
    approve(client, world, node["id"])
    edge.press_data(25.0, 1, T0_MS + 1000)
    wait_until(lambda: online(client, world, press["id"]))

    edge.send(edge.node.ddeath("press"))
    wait_until(lambda: not online(client, world, press["id"]))
    listed = sparkplug_devices(client, world.a.headers)[PRESS_KEY]
    assert listed["offline_since"] is not None and not listed["online"]

    edge.send(edge.node.dbirth("press", metric("Temperature", DataType.Double, 26.0, alias=1)))
    wait_until(lambda: online(client, world, press["id"]))
    edge.send(edge.node.ndata(metric("Uptime", DataType.Int64, 6)))
    wait_until(lambda: online(client, world, node["id"]))

    edge.peer.client.socket().close()  # a lost connection: the broker publishes the NDEATH will
    wait_until(lambda: not online(client, world, node["id"]))
    wait_until(lambda: not online(client, world, press["id"]))


def test_malformed_and_unclaimed_messages_are_dead_lettered(
    client: TestClient, world: World, runtime: Runtime, edge: Edge
) -> None:
    claim(client, world.a.headers)
    garbage = b"\xff\xff not a protobuf"
    edge.send((f"spBv1.0/{GROUP}/DDATA/gw1/press", garbage))
    malformed = wait_until(
        lambda: dead_letters(client, world.a.headers, "sparkplug_malformed_payload")
    )
    assert malformed[0]["source"] == "sparkplug"
    assert malformed[0]["enterprise_id"] == world.a.enterprise_id
    assert malformed[0]["detail"].startswith("malformed Sparkplug B payload")
    assert malformed[0]["payload_size"] == len(garbage)

    stranger = EdgeNode("nobody", "gw9", timestamp_ms=T0_MS)
    edge.send(stranger.nbirth(metric("Uptime", DataType.Int64, 1)))
    unclaimed = wait_until(
        lambda: dead_letters(client, world.admin_headers, "unclaimed_sparkplug_group")
    )
    assert unclaimed[0]["device_id"] == "nobody/gw9" and unclaimed[0]["enterprise_id"] is None
    assert dead_letters(client, world.a.headers, "unclaimed_sparkplug_group") == []
    assert "nobody/gw9" not in sparkplug_devices(client, world.admin_headers)


def test_a_group_belongs_to_one_enterprise(client: TestClient, world: World) -> None:
    claim(client, world.a.headers)
    taken = client.post(
        "/api/v1/sparkplug/groups", json={"group_id": GROUP}, headers=world.b.headers
    )
    assert taken.status_code == 409 and "enterprise-a" not in taken.text
    assert (
        client.delete(f"/api/v1/sparkplug/groups/{GROUP}", headers=world.b.headers).status_code
        == 404
    )
    assert client.get("/api/v1/sparkplug/groups", headers=world.b.headers).json() == []
    listed = client.get("/api/v1/sparkplug/groups", headers=world.a.headers).json()
    assert [(g["group_id"], g["enterprise_id"]) for g in listed] == [(GROUP, world.a.enterprise_id)]
    bad = client.post("/api/v1/sparkplug/groups", json={"group_id": "a/b"}, headers=world.a.headers)
    assert bad.status_code == 422
    assert (
        client.delete(f"/api/v1/sparkplug/groups/{GROUP}", headers=world.a.headers).status_code
        == 204
    )
    assert client.get("/api/v1/sparkplug/groups", headers=world.a.headers).json() == []


def test_the_host_announces_its_state_birth_and_death(
    settings: Settings, mosquitto: MosquittoProcess
) -> None:
    """Sparkplug 3.0 host application: a retained STATE birth once subscribed, a death with the
    same timestamp when it stops (and as its will, should it vanish)."""
    rt = Runtime(settings)
    closed = False
    watcher = MqttPeer(mosquitto.host, mosquitto.port)
    try:
        before_ms = int(time.time() * 1000)
        rt.start_ingest(mqtt=True)
        assert rt.sparkplug is not None and rt.sparkplug.connected
        assert not watcher.connect().is_failure
        assert not watcher.subscribe("spBv1.0/STATE/#").is_failure
        birth = watcher.received()
        assert birth.topic == "spBv1.0/STATE/clusterbrain"  # retained or live: a race
        state = orjson.loads(birth.payload)
        assert state["online"] is True and before_ms <= state["timestamp"] <= time.time() * 1000
        rt.close()
        closed = True
        death = watcher.received()
        assert death.topic == birth.topic
        assert orjson.loads(death.payload) == {"online": False, "timestamp": state["timestamp"]}
    finally:
        watcher.close()
        if not closed:
            rt.close()
    late = MqttPeer(mosquitto.host, mosquitto.port)  # what an edge node finds when it connects
    try:
        assert not late.connect().is_failure
        assert not late.subscribe("spBv1.0/STATE/clusterbrain").is_failure
        assert orjson.loads(late.received().payload)["online"] is False
    finally:
        late.close()


def test_the_service_account_may_host_sparkplug(mosquitto_dynsec: MosquittoProcess) -> None:
    auth = DynsecBrokerAuth(
        mosquitto_dynsec.host, mosquitto_dynsec.port, *mosquitto_dynsec.admin_credentials
    )
    host = MqttPeer(
        mosquitto_dynsec.host,
        mosquitto_dynsec.port,
        "cb-ingest",
        "ingest-password",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    try:
        auth.ensure_service_account("cb-ingest", "ingest-password")
        assert not host.connect().is_failure
        assert not host.subscribe("spBv1.0/#").is_failure
        rebirth = codec.encode_rebirth(timestamp_ms=T0_MS)
        assert not host.publish("spBv1.0/plant1/NCMD/gw1", rebirth).is_failure
        assert host.received().topic == "spBv1.0/plant1/NCMD/gw1"  # and receives spBv1.0/#
        state = b'{"online":true,"timestamp":1}'
        assert not host.publish("spBv1.0/STATE/clusterbrain", state).is_failure
        assert host.publish("spBv1.0/plant1/NDATA/gw1", rebirth).is_failure, "no spoofing"
        assert host.subscribe("$share/ingest/spBv1.0/#").is_failure
    finally:
        host.close()
        auth.close()


@pytest.mark.parametrize(
    ("problem", "code"),
    [
        ("bad topic: not in the spBv1.0 namespace: x", "sparkplug_bad_topic"),
        ("malformed Sparkplug B payload: Error parsing message", "sparkplug_malformed_payload"),
        ("NDATA before NBIRTH", "sparkplug_no_birth"),
        ("DBIRTH before NBIRTH", "sparkplug_no_birth"),
        ("DDATA of a device without DBIRTH", "sparkplug_no_birth"),
        ("seq 9 where 4 was expected", "sparkplug_seq_gap"),
        ("unknown metric alias 7", "sparkplug_unknown_metric"),
        ("unknown metric name 'X'", "sparkplug_unknown_metric"),
        ("awaiting rebirth", "sparkplug_awaiting_rebirth"),
        ("metric 'X': datatype DataSet is not supported", "sparkplug_unsupported_datatype"),
        ("metric 'X': 300 does not fit a signed 8-bit integer", "sparkplug_wrong_type"),
        ("metric 'X': Boolean metric carries a str value", "sparkplug_wrong_type"),
        ("metric 'X': datatype Float where the BIRTH declared Double", "sparkplug_wrong_type"),
        ("alias 3 declared twice in the session", "sparkplug_bad_birth"),
        ("metric 'X' declared twice in the BIRTH", "sparkplug_bad_birth"),
        ("BIRTH metric without a name", "sparkplug_bad_birth"),
        ("metric with neither name nor alias", "sparkplug_bad_metric"),
        ("NBIRTH without a bdSeq metric: its NDEATH cannot be matched", "sparkplug_bad_lifecycle"),
        ("NBIRTH with seq 300, expected 0..255", "sparkplug_bad_lifecycle"),
        ("NDEATH without a bdSeq metric", "sparkplug_bad_lifecycle"),
    ],
)
def test_every_session_problem_has_a_reason_code(problem: str, code: str) -> None:
    assert reason_code(problem) == code


def test_edge_node_credentials_allow_only_the_nodes_own_topics(
    tmp_path: Any, mosquitto_dynsec: MosquittoProcess
) -> None:
    admin_user, admin_password = mosquitto_dynsec.admin_credentials
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
        console=False,
        mqtt_port=mosquitto_dynsec.port,
        broker_auth="dynsec",
        broker_admin_username=admin_user,
        broker_admin_password=admin_password,
    )
    rt = Runtime(settings)
    node: MqttPeer | None = None
    try:
        world = seed_world(rt)
        with TestClient(create_app(rt)) as client:
            claim(client, world.a.headers)
            url = f"/api/v1/sparkplug/groups/{GROUP}/edge-nodes/gw-3/credentials"
            assert client.post(url, headers=world.b.headers).status_code == 404  # A's group
            issued = client.post(url, headers=world.a.headers)
            assert issued.status_code == 201, issued.text
            login = issued.json()
            assert login["username"] == f"spBv1.0/{GROUP}/gw-3"
            node = MqttPeer(
                mosquitto_dynsec.host,
                mosquitto_dynsec.port,
                login["username"],
                login["password"],
                protocol=MQTTProtocolVersion.MQTTv5,
            )
            assert not node.connect().is_failure
            assert not node.subscribe(f"spBv1.0/{GROUP}/NCMD/gw-3").is_failure
            assert not node.subscribe("spBv1.0/STATE/+").is_failure
            assert node.subscribe("spBv1.0/#").is_failure, "no reading of other nodes"
            birth = codec.encode_rebirth(timestamp_ms=T0_MS)  # any payload: the ACL is checked
            assert not node.publish(f"spBv1.0/{GROUP}/NBIRTH/gw-3", birth).is_failure
            assert not node.publish(f"spBv1.0/{GROUP}/DDATA/gw-3/press", birth).is_failure
            assert node.publish(f"spBv1.0/{GROUP}/NBIRTH/gw-4", birth).is_failure
            assert node.publish("spBv1.0/other/NBIRTH/gw-3", birth).is_failure
            assert node.publish("spBv1.0/STATE/clusterbrain", birth).is_failure
            node.close()
            node = None
            revoked = client.delete(url, headers=world.a.headers)
            assert revoked.status_code == 204, revoked.text
            gone = MqttPeer(
                mosquitto_dynsec.host,
                mosquitto_dynsec.port,
                login["username"],
                login["password"],
                protocol=MQTTProtocolVersion.MQTTv5,
            )
            assert gone.connect().is_failure
    finally:
        if node is not None:
            node.close()
        rt.close()


def test_edge_node_credentials_need_a_broker_that_takes_identities(
    client: TestClient, world: World
) -> None:
    claim(client, world.a.headers)
    url = f"/api/v1/sparkplug/groups/{GROUP}/edge-nodes/gw-3/credentials"
    response = client.post(url, headers=world.a.headers)
    assert response.status_code == 503 and "dynsec" in response.json()["detail"]
    bad = client.post(f"/api/v1/sparkplug/groups/{GROUP}/edge-nodes/a+b/credentials",
                      headers=world.a.headers)  # fmt: skip
    assert bad.status_code == 422
