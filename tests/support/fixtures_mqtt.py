"""Broker fixtures and a synchronous MQTT test client; tests/conftest.py re-exports the fixtures."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from support.mosquitto import MosquittoProcess

WAIT = 5.0
T = TypeVar("T")


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """A plain mosquitto that allows anonymous clients, with persistence, for one test."""
    broker = MosquittoProcess(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def mosquitto_dynsec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """A mosquitto with the dynamic security plugin, no anonymous access, one admin client."""
    broker = MosquittoProcess(tmp_path_factory.mktemp("mosquitto-dynsec"), dynsec=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


class MqttPeer:
    """A paho client whose calls block until the broker answered, so tests read linearly.

    It never reconnects by itself: a test that sees a disconnect must see it stay disconnected.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        *,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311,
        clean_session: bool = True,
    ) -> None:
        self.host, self.port = host, port
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.disconnected = threading.Event()
        self._connacks: queue.Queue[ReasonCode] = queue.Queue()
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._pubacks: dict[int, ReasonCode] = {}
        v5 = protocol == MQTTProtocolVersion.MQTTv5
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"peer-{uuid.uuid4().hex[:10]}",
            clean_session=None if v5 else clean_session,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        self._clean_start = clean_session
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    def connect(self) -> ReasonCode:
        """The CONNACK's reason code; the network loop keeps running only on success."""
        self.disconnected.clear()
        if self.client.protocol == MQTTProtocolVersion.MQTTv5:
            self.client.connect(self.host, self.port, clean_start=self._clean_start)
        else:
            self.client.connect(self.host, self.port)
        self.client.loop_start()
        code = self._connacks.get(timeout=WAIT)
        if code.is_failure:
            self.client.loop_stop()
        return code

    def subscribe(self, topic: str, qos: int = 1) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos)
        return self._wait_for(self._subacks, mid)[0]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> ReasonCode:
        """The PUBACK's reason code (MQTT 5 tells 'Not authorized'; 3.1.1 always says success)."""
        info = self.client.publish(topic, payload, qos)
        if qos == 0:
            return ReasonCode(PacketTypes.PUBACK, identifier=0)
        info.wait_for_publish(WAIT)
        return self._wait_for(self._pubacks, info.mid)

    def received(self, timeout: float = WAIT) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def received_topics(self, settle: float = 0.3) -> list[str]:
        """Everything received within the settle time, for asserting absences."""
        topics = []
        try:
            while True:
                topics.append(self.messages.get(timeout=settle).topic)
        except queue.Empty:
            return topics

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    @staticmethod
    def _wait_for(acks: dict[int, T], mid: int | None) -> T:
        """Acks are recorded by the network thread; poll briefly for ours."""
        deadline = time.monotonic() + WAIT
        while mid not in acks:
            if mid is None or time.monotonic() > deadline:
                raise TimeoutError(f"no acknowledgement for message id {mid}")
            time.sleep(0.005)
        return acks.pop(mid)

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self._connacks.put(rc)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _rc: ReasonCode, _p: Any) -> None:
        self.disconnected.set()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        self._subacks[mid] = codes

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        self._pubacks[mid] = rc
