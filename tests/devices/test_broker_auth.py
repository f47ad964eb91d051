"""Per-device credentials and ACLs against a real mosquitto with the dynamic-security plugin."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from clusterbrain.devices.broker_auth import (
    BrokerAuth,
    BrokerAuthUnavailable,
    DynsecBrokerAuth,
    DynsecControlClient,
    NullBrokerAuth,
    device_acls,
    device_role,
)
from clusterbrain.platform.errors import InvalidInput
from support.fixtures_mqtt import MqttPeer, mosquitto_dynsec  # noqa: F401
from support.mosquitto import MosquittoProcess
from support.services import free_port

pytestmark = pytest.mark.mosquitto

SERVICE = ("cb-ingest", "ingest-password")
V5 = MQTTProtocolVersion.MQTTv5
V311 = MQTTProtocolVersion.MQTTv311


@pytest.fixture
def auth(mosquitto_dynsec: MosquittoProcess) -> Iterator[DynsecBrokerAuth]:  # noqa: F811
    admin = mosquitto_dynsec.admin_credentials
    broker_auth = DynsecBrokerAuth(mosquitto_dynsec.host, mosquitto_dynsec.port, *admin)
    broker_auth.ensure_service_account(*SERVICE)
    yield broker_auth
    broker_auth.close()


@pytest.fixture
def peers(mosquitto_dynsec: MosquittoProcess) -> Iterator[PeerFactory]:  # noqa: F811
    factory = PeerFactory(mosquitto_dynsec)
    yield factory
    factory.close_all()


class PeerFactory:
    """Makes clients of the broker under test and closes them all at the end."""

    def __init__(self, broker: MosquittoProcess) -> None:
        self.broker = broker
        self._peers: list[MqttPeer] = []

    def new(self, username: str, password: str, protocol: MQTTProtocolVersion = V311) -> MqttPeer:
        peer = MqttPeer(self.broker.host, self.broker.port, username, password, protocol=protocol)
        self._peers.append(peer)
        return peer

    def connected(
        self, username: str, password: str, protocol: MQTTProtocolVersion = V311
    ) -> MqttPeer:
        peer = self.new(username, password, protocol)
        code = peer.connect()
        assert not code.is_failure, f"{username} refused: {code}"
        return peer

    def refused(self, username: str, password: str) -> bool:
        return bool(self.new(username, password).connect().is_failure)

    def close_all(self) -> None:
        for peer in self._peers:
            peer.close()


def test_device_connects_with_its_own_secret(auth: DynsecBrokerAuth, peers: PeerFactory) -> None:
    auth.upsert_device("dev-a", "secret-a")
    peers.connected("dev-a", "secret-a")


def test_wrong_password_and_unknown_device_are_refused(
    auth: DynsecBrokerAuth, peers: PeerFactory
) -> None:
    auth.upsert_device("dev-a", "secret-a")
    assert peers.refused("dev-a", "not-the-secret")
    assert peers.refused("dev-nobody", "secret-a")


def test_device_publishes_only_under_its_own_id(
    auth: DynsecBrokerAuth,
    peers: PeerFactory,
    mosquitto_dynsec: MosquittoProcess,  # noqa: F811
) -> None:
    auth.upsert_device("dev-a", "secret-a")
    auth.upsert_device("dev-b", "secret-b")
    service = peers.connected(*SERVICE)
    assert not service.subscribe("cb/v1/+/telemetry").is_failure
    assert not service.subscribe("cb/v1/+/events").is_failure
    watcher = peers.connected(*mosquitto_dynsec.admin_credentials)  # sees every topic
    assert not watcher.subscribe("cb/v1/#").is_failure
    device = peers.connected("dev-a", "secret-a", protocol=V5)

    assert device.publish("cb/v1/dev-b/telemetry", b"forged").is_failure  # MQTT 5: Not authorized
    assert device.publish("cb/v1/dev-a/commands", b"not upstream").is_failure
    assert not device.publish("cb/v1/dev-a/telemetry", b"own").is_failure
    assert not device.publish("cb/v1/dev-a/events", b"own").is_failure
    assert not device.publish("cb/v1/dev-a/commands/ack", b"own").is_failure

    assert service.received().topic == "cb/v1/dev-a/telemetry"
    assert service.received().topic == "cb/v1/dev-a/events"
    assert service.received_topics() == []
    assert watcher.received_topics() == [
        "cb/v1/dev-a/telemetry",
        "cb/v1/dev-a/events",
        "cb/v1/dev-a/commands/ack",
    ]


def test_device_subscribes_only_to_its_own_commands(
    auth: DynsecBrokerAuth, peers: PeerFactory
) -> None:
    auth.upsert_device("dev-a", "secret-a")
    auth.upsert_device("dev-b", "secret-b")
    device = peers.connected("dev-a", "secret-a", protocol=V5)
    for foreign in ("cb/v1/dev-b/commands", "cb/v1/+/commands", "cb/v1/#", "cb/v1/dev-a/#"):
        assert device.subscribe(foreign).is_failure, foreign
    assert not device.subscribe("cb/v1/dev-a/commands").is_failure

    service = peers.connected(*SERVICE)
    assert not service.publish("cb/v1/dev-b/commands", b"for b").is_failure
    assert not service.publish("cb/v1/dev-a/commands", b"for a").is_failure
    message = device.received()
    assert (message.topic, message.payload) == ("cb/v1/dev-a/commands", b"for a")
    assert device.received_topics() == []


def test_revoke_disconnects_a_connected_device_without_restart(
    auth: DynsecBrokerAuth,
    peers: PeerFactory,
    mosquitto_dynsec: MosquittoProcess,  # noqa: F811
) -> None:
    auth.upsert_device("dev-a", "secret-a")
    device = peers.connected("dev-a", "secret-a")
    pid_before = mosquitto_dynsec.pid

    auth.revoke_device("dev-a")

    assert device.disconnected.wait(5), "revoked device is still connected"
    assert peers.refused("dev-a", "secret-a")
    assert mosquitto_dynsec.pid == pid_before


def test_revoke_is_idempotent_and_upsert_brings_a_device_back(
    auth: DynsecBrokerAuth, peers: PeerFactory
) -> None:
    auth.revoke_device("dev-never-existed")
    auth.upsert_device("dev-a", "secret-a")
    auth.revoke_device("dev-a")
    auth.revoke_device("dev-a")
    auth.upsert_device("dev-a", "secret-new")
    peers.connected("dev-a", "secret-new")


def test_rotation_refuses_the_old_secret_and_kicks_its_session(
    auth: DynsecBrokerAuth, peers: PeerFactory
) -> None:
    auth.upsert_device("dev-a", "secret-old")
    old_session = peers.connected("dev-a", "secret-old")

    auth.upsert_device("dev-a", "secret-new")

    assert old_session.disconnected.wait(5)
    assert peers.refused("dev-a", "secret-old")
    device = peers.connected("dev-a", "secret-new", protocol=V5)
    assert not device.publish("cb/v1/dev-a/telemetry", b"after rotation").is_failure


def test_upsert_is_idempotent(
    auth: DynsecBrokerAuth,
    peers: PeerFactory,
    mosquitto_dynsec: MosquittoProcess,  # noqa: F811
) -> None:
    for _ in range(3):
        auth.upsert_device("dev-a", "secret-a")
    device = peers.connected("dev-a", "secret-a", protocol=V5)
    assert not device.publish("cb/v1/dev-a/telemetry", b"x").is_failure
    assert device.publish("cb/v1/dev-b/telemetry", b"x").is_failure

    control = DynsecControlClient(
        mosquitto_dynsec.host, mosquitto_dynsec.port, *mosquitto_dynsec.admin_credentials
    )
    try:
        [client, role] = control.execute(
            [
                {"command": "getClient", "username": "dev-a"},
                {"command": "getRole", "rolename": device_role("dev-a")},
            ]
        )
    finally:
        control.close()
    assert client["data"]["client"]["roles"] == [{"rolename": "cb-device-dev-a", "priority": 10}]
    assert len(role["data"]["role"]["acls"]) == len(device_acls("dev-a"))


def test_service_account_reads_through_a_shared_subscription(
    auth: DynsecBrokerAuth, peers: PeerFactory
) -> None:
    auth.upsert_device("dev-a", "secret-a")
    workers = [peers.connected(*SERVICE, protocol=V5) for _ in range(2)]
    for worker in workers:
        assert not worker.subscribe("$share/ingest/cb/v1/+/telemetry").is_failure
        assert not worker.subscribe("$share/ingest/cb/v1/+/events").is_failure
    device = peers.connected("dev-a", "secret-a")

    for i in range(20):
        device.publish("cb/v1/dev-a/telemetry", str(i).encode())

    payloads = [int(m.payload) for w in workers for m in _drain(w)]
    assert sorted(payloads) == list(range(20)), "each message to exactly one worker"


def test_service_account_cannot_read_everything(auth: DynsecBrokerAuth, peers: PeerFactory) -> None:
    service = peers.connected(*SERVICE, protocol=V5)
    assert service.subscribe("cb/v1/#").is_failure
    assert service.subscribe("cb/v1/+/commands").is_failure
    assert service.publish("cb/v1/dev-a/telemetry", b"spoof").is_failure


def test_ensure_service_account_keeps_sessions_unless_the_password_changes(
    auth: DynsecBrokerAuth, peers: PeerFactory
) -> None:
    worker = peers.connected(*SERVICE)
    auth.ensure_service_account(*SERVICE)
    assert not worker.disconnected.wait(0.5), "same password must not kick running workers"

    auth.ensure_service_account(SERVICE[0], "a-new-password")
    assert worker.disconnected.wait(5)
    assert peers.refused(*SERVICE)
    peers.connected(SERVICE[0], "a-new-password")


def test_identities_survive_a_broker_restart_and_the_admin_reconnects(
    auth: DynsecBrokerAuth,
    peers: PeerFactory,
    mosquitto_dynsec: MosquittoProcess,  # noqa: F811
) -> None:
    auth.upsert_device("dev-a", "secret-a")
    mosquitto_dynsec.restart()
    peers.connected("dev-a", "secret-a")
    auth.upsert_device("dev-b", "secret-b")  # the admin connection came back by itself
    peers.connected("dev-b", "secret-b")


def test_identities_that_would_widen_an_acl_are_rejected(auth: DynsecBrokerAuth) -> None:
    for bad in ("", "a/b", "+", "dev#", "$SYS", "x\0y"):
        with pytest.raises(InvalidInput):
            auth.upsert_device(bad, "secret")
        with pytest.raises(InvalidInput):
            auth.revoke_device(bad)


def test_unreachable_broker_is_unavailable() -> None:
    broker_auth = DynsecBrokerAuth("127.0.0.1", free_port(), "admin", "pw", timeout=1.0)
    with pytest.raises(BrokerAuthUnavailable):
        broker_auth.upsert_device("dev-a", "secret-a")
    broker_auth.close()


def test_refused_admin_is_unavailable(mosquitto_dynsec: MosquittoProcess) -> None:  # noqa: F811
    admin = mosquitto_dynsec.admin_credentials
    broker_auth = DynsecBrokerAuth(
        mosquitto_dynsec.host, mosquitto_dynsec.port, admin.username, "wrong", timeout=2.0
    )
    with pytest.raises(BrokerAuthUnavailable, match="refused"):
        broker_auth.upsert_device("dev-a", "secret-a")
    broker_auth.close()


def test_a_broker_without_dynsec_times_out_clearly(tmp_path: Path) -> None:
    broker = MosquittoProcess(tmp_path, allow_anonymous=True).start()
    try:
        broker_auth = DynsecBrokerAuth(broker.host, broker.port, "admin", "pw", timeout=1.0)
        with pytest.raises(BrokerAuthUnavailable, match="dynamic-security"):
            broker_auth.upsert_device("dev-a", "secret-a")
        broker_auth.close()
    finally:
        broker.kill()


def test_null_broker_auth_satisfies_the_protocol() -> None:
    null: BrokerAuth = NullBrokerAuth()
    null.upsert_device("dev-a", "s")
    null.revoke_device("dev-a")
    null.ensure_service_account("svc", "pw")
    null.close()


def _drain(peer: MqttPeer) -> list[mqtt.MQTTMessage]:
    messages = []
    while True:
        try:
            messages.append(peer.received(timeout=0.5))
        except queue.Empty:
            return messages
