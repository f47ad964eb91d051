"""MQTT ingest: a paho subscriber feeding the pipeline, acknowledging only what is persisted.

QoS 1 with a persistent session and manual acknowledgement: the broker keeps every message it has
not seen a PUBACK for, across restarts of this process, and the pipeline sends the PUBACK only
after the points are committed (or spooled). Several workers share the load with an MQTT 5 shared
subscription (``$share/<group>/cb/v1/+/telemetry``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from clusterbrain.connectors.mqtt.client import PahoOptions, build_paho_client
from clusterbrain.telemetry.pipeline import IngestPipeline, MessageOutcome, RawMessage

log = logging.getLogger(__name__)
TELEMETRY_FILTER = "cb/v1/+/telemetry"
GATEWAY_FILTER = "cb/v1/+/gateway/+/telemetry"
ACK_FILTERS = ("cb/v1/+/commands/ack", "cb/v1/+/gateway/+/commands/ack")
"""Devices' (and gateways') answers to commands."""
SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 65_535


@dataclass(frozen=True, slots=True)
class MqttIngestConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "clusterbrain-ingest"
    username: str = ""
    password: str = ""
    protocol: str = "5"
    shared_group: str = "ingest"
    keepalive: int = 30


def subscription_topics(config: MqttIngestConfig) -> list[str]:
    """The topic filters (devices' own, and gateways'): shared among workers on MQTT 5.

    >>> subscription_topics(MqttIngestConfig())
    ['$share/ingest/cb/v1/+/telemetry', '$share/ingest/cb/v1/+/gateway/+/telemetry']
    >>> subscription_topics(MqttIngestConfig(protocol="3.1.1"))
    ['cb/v1/+/telemetry', 'cb/v1/+/gateway/+/telemetry']
    """
    if config.protocol == "5" and config.shared_group:
        return [f"$share/{config.shared_group}/{f}" for f in (TELEMETRY_FILTER, GATEWAY_FILTER)]
    return [TELEMETRY_FILTER, GATEWAY_FILTER]


def _shared(config: MqttIngestConfig, topic: str) -> str:
    if config.protocol == "5" and config.shared_group:
        return f"$share/{config.shared_group}/{topic}"
    return topic


def device_id_of(topic: str) -> str | None:
    """``cb/v1/<device_id>/telemetry`` → ``<device_id>``.

    >>> device_id_of("cb/v1/dev-1/telemetry"), device_id_of("other/x")
    ('dev-1', None)
    """
    return route_of(topic)[0] or None


def route_of(topic: str) -> tuple[str, str]:
    """(device id, gateway id) of a telemetry topic; a device's own topic has no gateway.

    >>> route_of("cb/v1/gw-1/gateway/meter-7/telemetry"), route_of("cb/v1/dev-1/telemetry")
    (('meter-7', 'gw-1'), ('dev-1', ''))
    >>> route_of("cb/v1/gw-1/gateway//telemetry"), route_of("x/y")
    (('', 'gw-1'), ('', ''))
    """
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "cb" or parts[1] != "v1" or parts[-1] != "telemetry":
        return "", ""
    if len(parts) == 4:
        return parts[2], ""
    if len(parts) == 6 and parts[3] == "gateway":
        return parts[4], parts[2]
    return "", ""


class MqttIngest:
    """Owns one paho client; reconnects with backoff (paho's own loop), never stops on bad input."""

    def __init__(self, config: MqttIngestConfig, pipeline: IngestPipeline) -> None:
        self._config = config
        self._pipeline = pipeline
        self._connected = threading.Event()
        self._client = self._build_client()
        self.connect_failures = 0
        self.on_ack: Callable[[str, bytes], object] | None = None
        """Receives command acknowledgements (topic, payload)."""

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _build_client(self) -> mqtt.Client:
        config = self._config
        client = build_paho_client(
            PahoOptions(
                client_id=config.client_id,
                protocol=config.protocol,
                username=config.username,
                password=config.password,
                persistent_session=True,
                manual_ack=True,
                max_inflight=1000,
                max_queued=0,
            )
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties | None:
        if self._config.protocol != "5":
            return None
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        return properties

    def start(self, timeout: float = 10.0) -> bool:
        """Connect (keeping the broker-side session) and start the network thread.

        Returns whether the connection is up within ``timeout``; if not, paho keeps retrying
        with backoff in the background, so a broker that starts later is picked up.
        """
        self._client.connect_async(
            self._config.host,
            self._config.port,
            keepalive=self._config.keepalive,
            clean_start=False if self._config.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=self._connect_properties(),
        )
        self._client.loop_start()
        if self._connected.wait(timeout):
            return True
        log.warning(
            "MQTT broker %s:%s not reachable yet; retrying in the background",
            self._config.host,
            self._config.port,
        )
        return False

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.connect_failures += 1
            log.error("MQTT connect refused: %s", reason)
            return
        topics = subscription_topics(self._config)
        topics += [_shared(self._config, topic) for topic in ACK_FILTERS]
        client.subscribe([(topic, 1) for topic in topics])
        self._connected.set()
        log.info("MQTT ingest connected to %s:%s", self._config.host, self._config.port)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        log.warning("MQTT ingest disconnected (%s); paho reconnects with backoff", reason)

    def publish(self, topic: str, payload: bytes) -> bool:
        """Send a message (a command) with QoS 1; False when not connected."""
        if not self._connected.is_set():
            return False
        info = self._client.publish(topic, payload, qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic.endswith("/commands/ack"):
            self._on_ack(client, msg)
            return
        device_id, gateway_id = route_of(topic)
        mid, qos = msg.mid, msg.qos

        def ack(_outcome: MessageOutcome) -> None:
            if qos > 0:
                client.ack(mid, qos)

        message = RawMessage(
            device_id, bytes(msg.payload), "mqtt", topic, on_done=ack, via=gateway_id
        )
        # Blocks this network thread while the queue is full: back-pressure to the broker.
        # QoS 0 has no redelivery, so it is shed (and counted) after a short wait instead.
        self._pipeline.submit(message, timeout=None if qos > 0 else 1.0)

    def _on_ack(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        try:
            if self.on_ack is not None:
                self.on_ack(msg.topic, bytes(msg.payload))
        except Exception:  # a failing ack must not stop ingest; the command times out
            log.exception("command acknowledgement on %s could not be recorded", msg.topic)
        if msg.qos > 0:
            client.ack(msg.mid, msg.qos)
