"""The demo's amqtt broker: credentials, the own-topic rule, QoS 1 and persistent sessions."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from clusterbrain.connectors.mqtt.embedded_broker import EmbeddedBroker
from support.fixtures_mqtt import MqttPeer
from support.services import free_port, port_open

SERVICE = ("cb-ingest", "ingest-password")
SECRETS = {"dev-a": "secret-a", "dev-b": "secret-b"}


def check_device(username: str, password: str) -> bool:
    return SECRETS.get(username) == password


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(
        "127.0.0.1", free_port(), check_device, service_accounts=dict([SERVICE])
    )
    embedded.start()
    yield embedded
    embedded.stop()


class Peers:
    """Clients of one broker, all closed at the end of the test."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker = broker
        self._all: list[MqttPeer] = []

    def new(
        self,
        username: str | None,
        password: str | None,
        client_id: str | None = None,
        clean_session: bool = True,
    ) -> MqttPeer:
        peer = MqttPeer(
            self.broker.host,
            self.broker.port,
            username,
            password,
            client_id=client_id,
            clean_session=clean_session,
        )
        self._all.append(peer)
        return peer

    def connected(
        self,
        username: str | None,
        password: str | None,
        client_id: str | None = None,
        clean_session: bool = True,
    ) -> MqttPeer:
        peer = self.new(username, password, client_id, clean_session)
        code = peer.connect()
        assert not code.is_failure, f"{username} refused: {code}"
        return peer

    def refused(self, username: str | None, password: str | None) -> bool:
        return bool(self.new(username, password).connect().is_failure)

    def close(self) -> None:
        for peer in self._all:
            peer.close()


@pytest.fixture
def peers(broker: EmbeddedBroker) -> Iterator[Peers]:
    made = Peers(broker)
    yield made
    made.close()


def test_start_accepts_connections_and_stop_frees_the_port() -> None:
    port = free_port()
    embedded = EmbeddedBroker("127.0.0.1", port).start()
    assert port_open("127.0.0.1", port)
    embedded.stop()
    assert not port_open("127.0.0.1", port)


def test_good_credentials_are_accepted(peers: Peers) -> None:
    peers.connected("dev-a", "secret-a")
    peers.connected(*SERVICE)


def test_bad_credentials_are_refused(peers: Peers) -> None:
    assert peers.refused("dev-a", "secret-b")
    assert peers.refused("dev-nobody", "secret-a")
    assert peers.refused(SERVICE[0], "wrong")
    assert peers.refused(None, None)


def test_a_refused_client_id_can_still_connect_with_good_credentials(peers: Peers) -> None:
    assert peers.new("dev-a", "wrong", client_id="dev-a-client").connect().is_failure
    peers.connected("dev-a", "secret-a", client_id="dev-a-client")


def test_a_failing_check_refuses_instead_of_crashing() -> None:
    def broken(_username: str, _password: str) -> bool:
        raise RuntimeError("database down")

    embedded = EmbeddedBroker("127.0.0.1", free_port(), broken).start()
    try:
        assert MqttPeer(embedded.host, embedded.port, "dev-a", "x").connect().is_failure
    finally:
        embedded.stop()


def test_device_publishes_only_under_its_own_id(broker: EmbeddedBroker, peers: Peers) -> None:
    service = peers.connected(*SERVICE)
    assert not service.subscribe("cb/v1/#").is_failure
    device = peers.connected("dev-a", "secret-a")

    device.publish("cb/v1/dev-b/telemetry", b"forged")
    device.publish("other/topic", b"elsewhere")
    device.publish("cb/v1/dev-a/telemetry", b"own")

    message = service.received()
    assert (message.topic, message.payload) == ("cb/v1/dev-a/telemetry", b"own")
    assert service.received_topics() == []
    assert broker.denied >= 2


def test_device_subscribes_and_receives_only_its_own_topics(peers: Peers) -> None:
    device = peers.connected("dev-a", "secret-a")
    for foreign in ("cb/v1/dev-b/commands", "cb/v1/+/commands", "cb/v1/#", "#"):
        assert device.subscribe(foreign).is_failure, foreign
    assert not device.subscribe("cb/v1/dev-a/commands").is_failure

    service = peers.connected(*SERVICE)
    service.publish("cb/v1/dev-b/commands", b"for b")
    service.publish("cb/v1/dev-a/commands", b"for a")
    assert device.received().payload == b"for a"
    assert device.received_topics() == []


def test_a_will_cannot_target_another_device(peers: Peers) -> None:
    spy = peers.new("dev-a", "secret-a")
    spy.client.will_set("cb/v1/dev-b/telemetry", b"forged will", qos=1)
    assert spy.connect().is_failure
    honest = peers.new("dev-a", "secret-a")
    honest.client.will_set("cb/v1/dev-a/events", b"offline", qos=1)
    assert not honest.connect().is_failure


def test_a_persistent_session_keeps_its_subscriptions_only_for_its_own_identity(
    peers: Peers,
) -> None:
    """Same client id, other device: the old subscription must not leak dev-a's commands."""
    first = peers.connected("dev-a", "secret-a", client_id="shared-id", clean_session=False)
    assert not first.subscribe("cb/v1/dev-a/commands").is_failure
    first.close()
    second = peers.connected("dev-b", "secret-b", client_id="shared-id", clean_session=False)
    service = peers.connected(*SERVICE)
    service.publish("cb/v1/dev-a/commands", b"for a only")
    assert second.received_topics() == []


def test_qos1_from_paho_reaches_a_subscriber(peers: Peers) -> None:
    service = peers.connected(*SERVICE)
    assert service.subscribe("cb/v1/+/telemetry", qos=1).value == 1  # granted QoS
    device = peers.connected("dev-a", "secret-a")
    for i in range(50):
        info = device.client.publish("cb/v1/dev-a/telemetry", str(i), qos=1)
        info.wait_for_publish(5)
        assert info.is_published()
    received = [service.received() for _ in range(50)]
    assert [int(m.payload) for m in received] == list(range(50))
    assert {m.qos for m in received} == {1}


def test_persistent_session_receives_messages_queued_while_away(peers: Peers) -> None:
    ingest = peers.connected(*SERVICE, client_id="ingest-1", clean_session=False)
    assert not ingest.subscribe("cb/v1/+/telemetry", qos=1).is_failure
    ingest.close()
    time.sleep(0.3)  # let the broker take the session offline before anything is published

    device = peers.connected("dev-a", "secret-a")
    for i in range(10):
        device.publish("cb/v1/dev-a/telemetry", str(i).encode())

    back = peers.connected(*SERVICE, client_id="ingest-1", clean_session=False)
    received = [back.received() for _ in range(10)]
    assert [int(m.payload) for m in received] == list(range(10))
    assert back.received_topics() == []
    # amqtt delivers the queued messages with the retain flag set: consumers must not rely on it
    assert all(m.qos == 1 for m in received)


def test_without_authenticate_everyone_may_do_anything() -> None:
    embedded = EmbeddedBroker("127.0.0.1", free_port()).start()
    try:
        anyone = MqttPeer(embedded.host, embedded.port)
        assert not anyone.connect().is_failure
        assert not anyone.subscribe("#").is_failure
        anyone.publish("cb/v1/dev-b/telemetry", b"x")
        assert anyone.received().topic == "cb/v1/dev-b/telemetry"
        anyone.close()
    finally:
        embedded.stop()


def test_stop_is_prompt_after_a_resumed_persistent_session(peers: Peers) -> None:
    ingest = peers.connected(*SERVICE, client_id="ingest-1", clean_session=False)
    ingest.subscribe("cb/v1/+/telemetry")
    ingest.close()
    peers.connected("dev-a", "secret-a").publish("cb/v1/dev-a/telemetry", b"x")
    back = peers.connected(*SERVICE, client_id="ingest-1", clean_session=False)
    back.received()
    started = time.monotonic()
    peers.broker.stop()
    # stop() gives up waiting after its 4 s timeout; a hang would take forever, not 8 s.
    assert time.monotonic() - started < 8.0
    assert not port_open(peers.broker.host, peers.broker.port)
