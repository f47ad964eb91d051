"""Sparkplug B ingest: one subscriber to ``spBv1.0/#`` carrying out what the sessions decide.

Every message goes through :class:`EdgeNodeSessions`; then

- a BIRTH registers its node or device (pending, with a draft profile) in the claiming
  enterprise, or finds it again;
- readings of approved devices become the platform's JSON telemetry and enter the one ingest
  pipeline, so validation, storage, dead letters and alarms happen there as for any source;
  readings of pending devices are counted and dropped;
- a DEATH takes its devices offline; a rebirth request is published as NCMD; problems become
  dead letters.

The subscription is deliberately not shared (no ``$share/``): seq counts across all of an edge
node's messages, so one consumer must see all of them, in order. Exactly one process runs this
(``CLUSTERBRAIN_SPARKPLUG_INGEST``). The MQTT session is clean: what is published while ingest is
down is not kept by the broker; Sparkplug recovers by itself, because the first message after the
restart has no session here and triggers a rebirth.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
import paho.mqtt.client as mqtt
from prometheus_client import Counter

from clusterbrain.connectors.gateway.payloads import encode_readings
from clusterbrain.connectors.mqtt.client import PahoOptions, build_paho_client
from clusterbrain.connectors.source import Reading
from clusterbrain.connectors.sparkplug.codec import (
    NAMESPACE,
    MessageType,
    TopicError,
    encode_rebirth,
    parse_topic,
)
from clusterbrain.connectors.sparkplug.codec import topic as topic_of
from clusterbrain.connectors.sparkplug.session import Birth, EdgeNodeSessions, Outcome
from clusterbrain.devices.sparkplug import DraftTag, SparkplugDevice, SparkplugDirectory
from clusterbrain.platform.settings import Settings
from clusterbrain.telemetry.dead_letters import DeadLetterRecord
from clusterbrain.telemetry.metrics import IngestMetrics
from clusterbrain.telemetry.pipeline import DeadLetterSink, IngestPipeline, RawMessage

log = logging.getLogger(__name__)
SUBSCRIPTION: Final = f"{NAMESPACE}/#"
SOURCE: Final = "sparkplug"
UNCLAIMED: Final = "unclaimed_sparkplug_group"
UNCLAIMED_EVERY_US: Final = 60_000_000
REBIRTH_EVERY_US: Final = 30_000_000
BATCH_MESSAGES: Final = 500
STATE_DEATH_WAIT_S: Final = 2.0
"""How long stopping waits for the broker to take the STATE death."""


def reason_code(problem: str) -> str:
    """The dead-letter reason of a session problem (its text becomes the detail).

    >>> reason_code("seq 7 where 5 was expected"), reason_code("DDATA before NBIRTH")
    ('sparkplug_seq_gap', 'sparkplug_no_birth')
    >>> reason_code("metric 'T': datatype Float where the BIRTH declared Double")
    'sparkplug_wrong_type'
    """
    if problem.startswith("bad topic:"):
        return "sparkplug_bad_topic"
    if problem.startswith("malformed Sparkplug B payload"):
        return "sparkplug_malformed_payload"
    if problem.endswith("before NBIRTH") or problem.endswith("without DBIRTH"):
        return "sparkplug_no_birth"
    if problem.startswith("seq ") and problem.endswith(" was expected"):
        return "sparkplug_seq_gap"
    if problem.startswith("unknown metric "):
        return "sparkplug_unknown_metric"
    if problem == "awaiting rebirth":
        return "sparkplug_awaiting_rebirth"
    if problem.startswith(("NBIRTH ", "NDEATH ")):
        return "sparkplug_bad_lifecycle"
    if problem == "metric with neither name nor alias":
        return "sparkplug_bad_metric"
    if problem.startswith(("alias ", "BIRTH metric without a name")) or problem.endswith(
        "declared twice in the BIRTH"
    ):
        return "sparkplug_bad_birth"
    if problem.startswith("metric "):
        if problem.endswith("is not supported"):
            return "sparkplug_unsupported_datatype"
        return "sparkplug_wrong_type"
    return "sparkplug_problem"


def draft_tags(birth: Birth) -> list[DraftTag]:
    return [DraftTag(tag.tag, tag.kind.value, tag.name) for tag in birth.tags]


def _group_of(topic: str) -> str | None:
    """The group a topic names, parsed or not (to attribute a bad topic to its claimant)."""
    parts = topic.split("/")
    return parts[1] if len(parts) >= 4 and parts[0] == NAMESPACE else None


class DeviceCache(Protocol):
    """The pipeline's device directory (``SqlDeviceDirectory``): what this ingest tells it."""

    def invalidate(self, device_id: str | None = None) -> None: ...

    def touch(self, device_ids: Iterable[str], at: datetime) -> None: ...


class SparkplugMetrics:
    def __init__(self, metrics: IngestMetrics) -> None:
        r = metrics.registry
        self.ingest = metrics
        self.messages = Counter(
            "cb_sparkplug_messages", "Sparkplug messages by type", ["type"], registry=r
        )
        self.not_stored = Counter(
            "cb_sparkplug_readings_not_stored",
            "Readings of devices not approved (pending) or not registered",
            ["why"],
            registry=r,
        )
        self.rebirths = Counter(
            "cb_sparkplug_rebirth_requests", "NCMD rebirth requests sent", registry=r
        )
        self.ignored = Counter(
            "cb_sparkplug_ignored",
            "Messages left alone (commands, STATE, stale NDEATH)",
            registry=r,
        )
        self.unclaimed = Counter(
            "cb_sparkplug_unclaimed", "Messages of groups no enterprise claimed", registry=r
        )


class SparkplugProcessor:
    """The work per message, without MQTT: sessions, registry, pipeline and dead letters.

    Not thread-safe: one thread feeds it every message, in the order the broker delivered them.
    """

    def __init__(
        self,
        pipeline: IngestPipeline,
        directory: SparkplugDirectory,
        devices: DeviceCache,
        dead_letters: DeadLetterSink,
        metrics: IngestMetrics,
        publish: Callable[[str, bytes], None],
        *,
        sessions: EdgeNodeSessions | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._directory = directory
        self._devices = devices
        self._dead_letters = dead_letters
        self._publish = publish
        self.sessions = sessions or EdgeNodeSessions()
        self.metrics = SparkplugMetrics(metrics)
        self._unclaimed_seen: dict[str, int] = {}
        self._rebirth_sent: dict[str, int] = {}

    # --- one message -------------------------------------------------------------------------

    def process(self, topic: str, payload: bytes, received_us: int) -> list[DeadLetterRecord]:
        """Carry out one message; returns its dead letters (written by :meth:`write`)."""
        at = datetime.fromtimestamp(received_us / 1_000_000, UTC)
        try:
            parsed = parse_topic(topic)
        except TopicError:
            parsed = None
        if parsed is not None:
            self.metrics.messages.labels(parsed.message_type.value).inc()
        if parsed is not None and parsed.message_type in (
            MessageType.NCMD,
            MessageType.DCMD,
            MessageType.STATE,
        ):
            self.metrics.ignored.inc()  # other hosts' business, and our own rebirth requests
            return []
        group = parsed.group if parsed is not None else _group_of(topic)
        enterprise_id = None if group is None else self._directory.enterprise_of(group)
        if parsed is not None and enterprise_id is None:
            return self._unclaimed(topic, payload, parsed.node_key, received_us, at)
        outcome = self.sessions.handle(topic, payload, received_us)
        if enterprise_id is None:  # a bad topic of no claimed group: platform admins see it
            return self._problems(outcome, None, topic, payload, at)
        self._births(enterprise_id, outcome.births)
        self._readings(enterprise_id, outcome.readings, topic, received_us, at)
        self._deaths(enterprise_id, outcome, at)
        for request in outcome.rebirths:
            self._publish(request.topic, request.payload)
            self.metrics.rebirths.inc()
            log.info("Sparkplug rebirth requested: %s (%s)", request.topic, request.reason)
        if outcome.ignored:
            self.metrics.ignored.inc(len(outcome.ignored))
        return self._problems(outcome, enterprise_id, topic, payload, at)

    def write(self, records: Sequence[DeadLetterRecord]) -> None:
        """Dead letters of a batch of messages, in one transaction, counted by reason."""
        if not records:
            return
        for record in records:
            self.metrics.ingest.dead_letters.labels(record.reason).inc()
        try:
            self._dead_letters.write(records)
        except Exception:  # the metadata DB being down must not stop ingest
            log.exception("could not write %d Sparkplug dead letters", len(records))

    # --- the parts ---------------------------------------------------------------------------

    def _unclaimed(
        self, topic: str, payload: bytes, node_key: str, received_us: int, at: datetime
    ) -> list[DeadLetterRecord]:
        """Counted always; kept as a dead letter once a minute per edge node, so that a broker
        carrying another system's Sparkplug traffic does not fill the database."""
        self.metrics.unclaimed.inc()
        last = self._unclaimed_seen.get(node_key)
        if last is not None and received_us - last < UNCLAIMED_EVERY_US:
            return []
        if len(self._unclaimed_seen) > 10_000:
            self._unclaimed_seen.clear()
        self._unclaimed_seen[node_key] = received_us
        group = node_key.split("/", 1)[0]
        detail = (
            f"no enterprise claimed the Sparkplug group {group!r} (POST /api/v1/sparkplug/groups)"
        )
        return [DeadLetterRecord(at, None, node_key, SOURCE, topic, UNCLAIMED, detail, payload)]

    def _births(self, enterprise_id: int, births: Sequence[Birth]) -> None:
        for birth in births:
            try:
                device, changed = self._directory.register(
                    enterprise_id, birth.device_key, draft_tags(birth)
                )
            except Exception:
                log.exception("could not register the Sparkplug device %s", birth.device_key)
                continue
            if changed:  # new tags: the pipeline must validate against the new profile
                self._devices.invalidate(device.device_id)

    def _readings(
        self,
        enterprise_id: int,
        readings: Mapping[str, Sequence[Reading]],
        topic: str,
        received_us: int,
        at: datetime,
    ) -> None:
        for key, values in readings.items():
            device = self._device(enterprise_id, key)
            if device is None:
                self.metrics.not_stored.labels("unregistered").inc(len(values))
                self._rebirth_unregistered(key, received_us)
                continue
            if not device.active:
                self.metrics.not_stored.labels("pending").inc(len(values))
                self._devices.touch([device.device_id], at)  # it is alive, for the approver
                continue
            for payload in encode_readings(values):
                self._pipeline.submit(RawMessage(device.device_id, payload, SOURCE, topic))

    def _rebirth_unregistered(self, key: str, received_us: int) -> None:
        """Data of a device unknown here though its session is alive (deleted by an engineer,
        its group claimed anew, its registration failed): its BIRTH registers it again."""
        group, edge_node = key.split("/")[:2]
        node_key = f"{group}/{edge_node}"
        last = self._rebirth_sent.get(node_key)
        if last is not None and received_us - last < REBIRTH_EVERY_US:
            return
        if len(self._rebirth_sent) > 10_000:
            self._rebirth_sent.clear()
        self._rebirth_sent[node_key] = received_us
        request = topic_of(group, MessageType.NCMD, edge_node)
        self._publish(request, encode_rebirth(timestamp_ms=received_us // 1000))
        self.metrics.rebirths.inc()
        log.info("Sparkplug rebirth requested: %s (data of unregistered %s)", request, key)

    def _deaths(self, enterprise_id: int, outcome: Outcome, at: datetime) -> None:
        if not outcome.deaths:
            return
        try:
            self._directory.mark_offline(enterprise_id, [d.device_key for d in outcome.deaths], at)
        except Exception:
            log.exception("could not record a Sparkplug death")

    def _device(self, enterprise_id: int, key: str) -> SparkplugDevice | None:
        try:
            return self._directory.device_of(enterprise_id, key)
        except Exception:
            log.exception("could not look up the Sparkplug device %s", key)
            return None

    def _problems(
        self,
        outcome: Outcome,
        enterprise_id: int | None,
        topic: str,
        payload: bytes,
        at: datetime,
    ) -> list[DeadLetterRecord]:
        """One dead letter per reason and device of the message, every detail joined."""
        grouped: dict[tuple[str, str], list[str]] = {}
        for problem in outcome.problems:
            key = problem.device_key or ""
            grouped.setdefault((reason_code(problem.reason), key), []).append(problem.reason)
        records = []
        for (reason, key), details in grouped.items():
            device = self._device(enterprise_id, key) if enterprise_id and key else None
            records.append(
                DeadLetterRecord(
                    received_at=at,
                    enterprise_id=enterprise_id,
                    device_id=device.device_id if device else key,
                    source=SOURCE,
                    topic=topic,
                    reason=reason,
                    detail="; ".join(details)[:4000],
                    payload=payload,
                )
            )
        return records


@dataclass(frozen=True, slots=True)
class SparkplugIngestConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "clusterbrain-ingest-sparkplug"
    username: str = ""
    password: str = ""
    protocol: str = "5"
    keepalive: int = 30
    queue_size: int = 10_000
    host_id: str = "clusterbrain"
    """The Sparkplug host application id of the STATE messages."""


def sparkplug_config(settings: Settings, worker_id: str = "") -> SparkplugIngestConfig:
    suffix = f"-{worker_id}" if worker_id else ""
    return SparkplugIngestConfig(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        client_id=f"{settings.mqtt_client_id}-sparkplug{suffix}",
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        protocol=settings.mqtt_protocol,
        host_id=settings.sparkplug_host_id,
    )


def state_topic(host_id: str) -> str:
    """Where a Sparkplug 3.0 host application announces itself.

    >>> state_topic("clusterbrain")
    'spBv1.0/STATE/clusterbrain'
    """
    return f"spBv1.0/STATE/{host_id}"


def state_payload(online: bool, timestamp_ms: int) -> bytes:
    """The STATE birth (online) or death: JSON, the death with the timestamp of its birth.

    >>> state_payload(True, 1_700_000_000_000)
    b'{"online":true,"timestamp":1700000000000}'
    """
    return orjson.dumps({"online": online, "timestamp": timestamp_ms})


class SparkplugIngest:
    """Owns one paho client (clean session) and the thread that processes its messages in order.

    The network thread only queues; the worker processes and writes dead letters per batch. A
    full queue blocks the network thread: back-pressure to the broker, as in the MQTT ingest.

    As the Sparkplug 3.0 host application it publishes its STATE (retained, QoS 1): each
    connection registers a will ``{"online": false, "timestamp": t}`` and, once subscribed,
    publishes ``{"online": true, "timestamp": t}`` with the same t; stopping publishes the death
    itself. Edge nodes configured with this primary host publish only while it is online.
    """

    def __init__(
        self,
        config: SparkplugIngestConfig,
        pipeline: IngestPipeline,
        directory: SparkplugDirectory,
        devices: DeviceCache,
        dead_letters: DeadLetterSink,
        metrics: IngestMetrics,
    ) -> None:
        self._config = config
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._queue: queue.Queue[tuple[str, bytes, int]] = queue.Queue(config.queue_size)
        self._state_ms = 0
        """The timestamp of this connection's STATE will and birth."""
        self._client = self._build_client()
        self.processor = SparkplugProcessor(
            pipeline, directory, devices, dead_letters, metrics, self._publish
        )
        self._worker: threading.Thread | None = None

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
            )
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self, timeout: float = 10.0) -> bool:
        """Connect and start; paho keeps retrying in the background if the broker is not up."""
        self._stopping.clear()
        self._worker = threading.Thread(target=self._work, name="sparkplug-ingest", daemon=True)
        self._worker.start()
        self._arm_will()
        self._client.connect_async(
            self._config.host,
            self._config.port,
            keepalive=self._config.keepalive,
            clean_start=True,
        )
        self._client.loop_start()
        if self._connected.wait(timeout):
            return True
        log.warning("Sparkplug ingest: broker %s:%s not reachable yet", *self._address())
        return False

    def stop(self) -> None:
        self._stopping.set()
        if self._connected.is_set():
            death = state_payload(False, self._state_ms)
            info = self._client.publish(state_topic(self._config.host_id), death, 1, retain=True)
            with suppress(RuntimeError, ValueError):
                info.wait_for_publish(STATE_DEATH_WAIT_S)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        if self._worker is not None:
            self._worker.join(10.0)
            self._worker = None

    def _address(self) -> tuple[str, int]:
        return self._config.host, self._config.port

    def _arm_will(self) -> None:
        """A new STATE timestamp and the will that goes with it, for the next connection."""
        self._state_ms = time.time_ns() // 1_000_000
        death = state_payload(False, self._state_ms)
        self._client.will_set(state_topic(self._config.host_id), death, qos=1, retain=True)

    def _publish(self, topic: str, payload: bytes) -> None:
        # Sparkplug commands are QoS 0 and never retained.
        self._client.publish(topic, payload, qos=0, retain=False)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("Sparkplug ingest: connect refused: %s", reason)
            return
        client.subscribe(SUBSCRIPTION, qos=1)

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, codes: list[Any], _props: Any
    ) -> None:
        """Connected means subscribed: messages published from now on reach this host."""
        if codes and codes[0].is_failure:
            log.error("Sparkplug ingest: subscription to %s refused: %s", SUBSCRIPTION, codes[0])
            return
        birth = state_payload(True, self._state_ms)
        self._client.publish(state_topic(self._config.host_id), birth, qos=1, retain=True)
        self._connected.set()
        log.info("Sparkplug ingest subscribed to %s on %s:%s", SUBSCRIPTION, *self._address())

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            self._arm_will()  # the reconnection is a new STATE session
            log.warning("Sparkplug ingest disconnected (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        item = (msg.topic, bytes(msg.payload), int(time.time() * 1_000_000))
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _work(self) -> None:
        while not (self._stopping.is_set() and self._queue.empty()):
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < BATCH_MESSAGES:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records: list[DeadLetterRecord] = []
            for topic, payload, received_us in batch:
                try:
                    records += self.processor.process(topic, payload, received_us)
                except Exception:  # never stop on one message
                    log.exception("Sparkplug message on %s could not be processed", topic)
            self.processor.write(records)
