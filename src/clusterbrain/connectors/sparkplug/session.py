"""The host side of Sparkplug B sessions, one per edge node, as a pure state machine (no I/O).

``EdgeNodeSessions.handle`` takes one MQTT message and says what it means: readings per device,
births (a node or device and its metrics, the draft of a device profile), deaths, rebirth
requests to publish and problems to dead-letter. The caller does the publishing and storing.

Rules, after Sparkplug 3.0:

- An NBIRTH opens the node's session: its ``bdSeq``, its ``seq`` and the alias → metric map that
  the node and all its devices share. A DBIRTH adds a device to the session.
- Every later message of the node (DBIRTH, NDATA, DDATA, DDEATH) carries the previous seq plus
  one, modulo 256. A gap means a lost message.
- A rebirth (NCMD ``Node Control/Rebirth`` = true) is requested when DATA arrives without a
  BIRTH, on a seq gap, or when a metric's alias or name was not in the BIRTH.
- While a rebirth is awaited, the node's DATA is not turned into readings but reported as a
  problem ("awaiting rebirth"): with a message lost, or aliases unknown, values could be
  attributed to the wrong metric or silently missing, and the NBIRTH/DBIRTHs that follow carry
  every current value anyway. One request per incident: once ``rebirth_retry_us`` has passed
  without an NBIRTH, the node's next message sends it again, in case the command was lost.
- An NDEATH ends the session (node and all its devices offline) only when its ``bdSeq`` is that
  of the current NBIRTH: a will left over from an older connection can arrive after the new
  NBIRTH and must not take the node offline. A DDEATH takes one device offline.
- Commands (NCMD, DCMD) and STATE messages are other hosts' business and are ignored.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from clusterbrain.connectors.source import Reading, Value
from clusterbrain.connectors.sparkplug.codec import (
    BDSEQ_METRIC,
    SEQ_MODULUS,
    SUPPORTED_DATATYPES,
    DataType,
    MessageType,
    Metric,
    Payload,
    PayloadError,
    Topic,
    TopicError,
    convert_value,
    datatype_name,
    decode_payload,
    encode_rebirth,
    parse_topic,
    topic,
)
from clusterbrain.devices.spec import TagKind
from clusterbrain.telemetry.store import Quality

CONTROL_PREFIXES: Final = ("Node Control/", "Device Control/")
"""Sparkplug's own control metrics: commands for the edge node, not process values."""
TAG_MAX_LENGTH: Final = 100
DEFAULT_REBIRTH_RETRY_US: Final = 30_000_000

_KIND: Final = {
    **dict.fromkeys(
        (DataType.Int8, DataType.Int16, DataType.Int32, DataType.Int64, DataType.DateTime),
        TagKind.INT,
    ),
    **dict.fromkeys(
        (DataType.UInt8, DataType.UInt16, DataType.UInt32, DataType.UInt64), TagKind.INT
    ),
    DataType.Float: TagKind.FLOAT,
    DataType.Double: TagKind.FLOAT,
    DataType.Boolean: TagKind.BOOL,
    DataType.String: TagKind.STRING,
    DataType.Text: TagKind.STRING,
}


def tag_name(metric_name: str) -> str:
    """A tag name (``[a-z][a-z0-9_]*``, at most 100 characters) for a Sparkplug metric name.

    Letters lose their accents; any other run of characters becomes one ``_``. A name left with
    no letter or digit (e.g. all Chinese) gets a short stable hash, so it stays distinct.

    >>> tag_name("Motor/Speed (rpm)"), tag_name("Température"), tag_name("2nd stage")
    ('motor_speed_rpm', 'temperature', 'm_2nd_stage')
    >>> tag_name("温度")
    'm_3732e264'
    """
    ascii_name = unicodedata.normalize("NFKD", metric_name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    if not name:
        return "m_" + hashlib.sha256(metric_name.encode()).hexdigest()[:8]
    if not name[0].isalpha():
        name = "m_" + name
    return name[:TAG_MAX_LENGTH].rstrip("_")


def _unique(tag: str, used: set[str]) -> str:
    """``tag``, or ``tag_2``, ``tag_3``... when another metric of the device already has it.

    >>> _unique("speed", {"speed", "speed_2"})
    'speed_3'
    """
    candidate, number = tag, 1
    while candidate in used:
        number += 1
        suffix = f"_{number}"
        candidate = tag[: TAG_MAX_LENGTH - len(suffix)] + suffix
    used.add(candidate)
    return candidate


def next_seq(seq: int) -> int:
    """
    >>> next_seq(41), next_seq(255)
    (42, 0)
    """
    return (seq + 1) % SEQ_MODULUS


@dataclass(frozen=True, slots=True)
class BirthTag:
    """One metric of a BIRTH as a tag of a draft device profile."""

    tag: str
    name: str
    """The Sparkplug metric name."""
    datatype: DataType
    kind: TagKind
    alias: int | None = None


@dataclass(frozen=True, slots=True)
class Birth:
    device_key: str
    group: str
    edge_node: str
    device: str | None
    """None for the edge node itself."""
    tags: tuple[BirthTag, ...]


@dataclass(frozen=True, slots=True)
class Death:
    device_key: str
    reason: str


@dataclass(frozen=True, slots=True)
class RebirthRequest:
    """An NCMD to publish (QoS 0, not retained, as Sparkplug commands are)."""

    topic: str
    payload: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Problem:
    """Why (part of) a message was not used; the caller dead-letters the message with it."""

    reason: str
    device_key: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    readings: Mapping[str, tuple[Reading, ...]] = field(default_factory=dict)
    """Device key (``group/edge_node`` or ``group/edge_node/device``) → its readings."""
    births: tuple[Birth, ...] = ()
    deaths: tuple[Death, ...] = ()
    rebirths: tuple[RebirthRequest, ...] = ()
    problems: tuple[Problem, ...] = ()
    ignored: tuple[str, ...] = ()
    """Messages deliberately left alone (commands, STATE, a stale NDEATH), for counting."""


@dataclass(slots=True)
class _MetricDef:
    name: str
    tag: str
    datatype: int
    alias: int | None
    supported: bool
    """False for control metrics and unsupported datatypes: declared, never read."""


@dataclass(slots=True)
class _Device:
    """The metrics a BIRTH declared for the node itself or one device."""

    by_name: dict[str, _MetricDef] = field(default_factory=dict)


@dataclass(slots=True)
class _Node:
    born: bool = False
    """False until an NBIRTH opened a session (kept to remember a pending rebirth request)."""
    bd_seq: int | None = None
    seq: int = 0
    awaiting_rebirth: bool = False
    rebirth_requested_us: int | None = None
    node: _Device = field(default_factory=_Device)
    devices: dict[str, _Device] = field(default_factory=dict)
    aliases: dict[int, tuple[str | None, str]] = field(default_factory=dict)
    """alias → (device id or None for the node, metric name), shared by node and devices."""


@dataclass(slots=True)
class _Builder:
    """The outcome of one message while it is being worked out."""

    received_us: int
    readings: dict[str, list[Reading]] = field(default_factory=dict)
    births: list[Birth] = field(default_factory=list)
    deaths: list[Death] = field(default_factory=list)
    rebirths: list[RebirthRequest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def problem(self, reason: str, device_key: str | None = None) -> None:
        self.problems.append(Problem(reason, device_key))

    def build(self) -> Outcome:
        return Outcome(
            readings={key: tuple(values) for key, values in self.readings.items()},
            births=tuple(self.births),
            deaths=tuple(self.deaths),
            rebirths=tuple(self.rebirths),
            problems=tuple(self.problems),
            ignored=tuple(self.ignored),
        )


def _is_control(name: str) -> bool:
    return name == BDSEQ_METRIC or name.startswith(CONTROL_PREFIXES)


def _ts_us(metric: Metric, payload: Payload, received_us: int) -> int:
    """The metric's timestamp, else the payload's, else the time of receipt."""
    ms = metric.timestamp_ms if metric.timestamp_ms is not None else payload.timestamp_ms
    return received_us if ms is None else ms * 1000


def _bd_seq(payload: Payload) -> int | None:
    found = payload.metric(BDSEQ_METRIC)
    if found is None or found.datatype is None or found.is_null:
        return None
    try:
        value = convert_value(found.datatype, found.raw)
    except PayloadError:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _forget(node: _Node, device_id: str) -> None:
    """Drop a device from the session, with the aliases it declared."""
    device = node.devices.pop(device_id, None)
    if device is None:
        return
    for definition in device.by_name.values():
        alias = definition.alias
        if alias is not None and node.aliases.get(alias) == (device_id, definition.name):
            del node.aliases[alias]


class EdgeNodeSessions:
    """What this host knows of every edge node it hears from; feed it every ``spBv1.0/`` message.

    Sparkplug's seq is per edge node, so all messages of one edge node must reach the same
    instance, in order: one subscriber per group of nodes, not a shared subscription.
    """

    def __init__(self, *, rebirth_retry_us: int = DEFAULT_REBIRTH_RETRY_US) -> None:
        self._nodes: dict[str, _Node] = {}
        self._rebirth_retry_us = rebirth_retry_us

    def handle(self, topic_name: str, payload_bytes: bytes, received_us: int) -> Outcome:
        """Interpret one message; never raises for bad input (it becomes a problem)."""
        out = _Builder(received_us)
        try:
            parsed = parse_topic(topic_name)
        except TopicError as error:
            out.problem(f"bad topic: {error.detail}")
            return out.build()
        if parsed.message_type in (MessageType.NCMD, MessageType.DCMD, MessageType.STATE):
            out.ignored.append(f"{parsed.message_type} is not for this host to interpret")
            return out.build()
        try:
            payload = decode_payload(payload_bytes)
        except PayloadError as error:
            out.problem(error.detail, parsed.device_key)
            return out.build()
        match parsed.message_type:
            case MessageType.NBIRTH:
                self._nbirth(parsed, payload, out)
            case MessageType.DBIRTH:
                self._dbirth(parsed, payload, received_us, out)
            case MessageType.NDEATH:
                self._ndeath(parsed, payload, out)
            case MessageType.DDEATH:
                self._ddeath(parsed, payload, received_us, out)
            case _:
                self._data(parsed, payload, received_us, out)
        return out.build()

    def tag_names(self, device_key: str) -> dict[str, str]:
        """Tag → Sparkplug metric name, as the current BIRTH of the node or device declared."""
        parts = device_key.split("/")
        node = self._nodes.get("/".join(parts[:2]))
        if node is None or not node.born:
            return {}
        device = node.node if len(parts) == 2 else node.devices.get("/".join(parts[2:]))
        if device is None:
            return {}
        return {d.tag: d.name for d in device.by_name.values() if d.supported}

    def online(self, device_key: str) -> bool:
        """Whether the node or device has a BIRTH in the current session and no DEATH since."""
        parts = device_key.split("/")
        node = self._nodes.get("/".join(parts[:2]))
        if node is None or not node.born:
            return False
        return len(parts) == 2 or "/".join(parts[2:]) in node.devices

    def awaiting_rebirth(self, node_key: str) -> bool:
        node = self._nodes.get(node_key)
        return node is not None and node.awaiting_rebirth

    # -- lifecycle -------------------------------------------------------------------------

    def _nbirth(self, parsed: Topic, payload: Payload, out: _Builder) -> None:
        node = _Node(born=True, bd_seq=_bd_seq(payload))
        if node.bd_seq is None:
            out.problem(
                "NBIRTH without a bdSeq metric: its NDEATH cannot be matched", parsed.node_key
            )
        if payload.seq is None or not 0 <= payload.seq < SEQ_MODULUS:
            out.problem(f"NBIRTH with seq {payload.seq}, expected 0..255", parsed.node_key)
        node.seq = (payload.seq or 0) % SEQ_MODULUS
        self._nodes[parsed.node_key] = node
        self._declare(node, node.node, None, parsed, payload, out)

    def _dbirth(self, parsed: Topic, payload: Payload, received_us: int, out: _Builder) -> None:
        node = self._session_for_data(parsed, payload, received_us, out)
        if node is None:
            return
        assert parsed.device is not None
        _forget(node, parsed.device)  # a repeated DBIRTH replaces what the earlier one declared
        device = node.devices[parsed.device] = _Device()
        self._declare(node, device, parsed.device, parsed, payload, out)

    def _declare(
        self,
        node: _Node,
        device: _Device,
        device_id: str | None,
        parsed: Topic,
        payload: Payload,
        out: _Builder,
    ) -> None:
        """Record a BIRTH's metrics (names, aliases, datatypes) and report it with its values."""
        key = parsed.device_key
        used: set[str] = set()
        tags: list[BirthTag] = []
        for metric in payload.metrics:
            if metric.name is None:
                out.problem("BIRTH metric without a name", key)
                continue
            if metric.name in device.by_name:
                out.problem(f"metric {metric.name!r} declared twice in the BIRTH", key)
                continue
            control = _is_control(metric.name)
            datatype = metric.datatype if metric.datatype is not None else DataType.Unknown
            # Control metrics are declared (their aliases may turn up in DATA) but never read.
            supported = datatype in SUPPORTED_DATATYPES and not control
            if not supported and not control:
                out.problem(
                    f"metric {metric.name!r}: datatype {datatype_name(datatype)} is not supported",
                    key,
                )
            tag = _unique(tag_name(metric.name), used) if supported else ""
            definition = _MetricDef(metric.name, tag, datatype, metric.alias, supported)
            device.by_name[metric.name] = definition
            if metric.alias is not None:
                if metric.alias in node.aliases:
                    out.problem(f"alias {metric.alias} declared twice in the session", key)
                else:
                    node.aliases[metric.alias] = (device_id, metric.name)
            if supported:
                kind = DataType(datatype)
                tags.append(BirthTag(definition.tag, metric.name, kind, _KIND[kind], metric.alias))
                self._read(definition, metric, payload, key, out)
        out.births.append(
            Birth(key, parsed.group, parsed.edge_node, device_id, tuple(tags)),
        )

    def _ndeath(self, parsed: Topic, payload: Payload, out: _Builder) -> None:
        node = self._nodes.get(parsed.node_key)
        if node is None or not node.born:
            out.ignored.append("NDEATH of a node without a session")
            return
        bd_seq = _bd_seq(payload)
        if bd_seq is None:
            out.problem("NDEATH without a bdSeq metric", parsed.node_key)
            return
        if node.bd_seq is not None and bd_seq != node.bd_seq:
            out.ignored.append(f"NDEATH bdSeq {bd_seq} is not the current NBIRTH's {node.bd_seq}")
            return
        del self._nodes[parsed.node_key]
        out.deaths.append(Death(parsed.node_key, "NDEATH"))
        out.deaths.extend(
            Death(f"{parsed.node_key}/{device}", "NDEATH of its edge node")
            for device in node.devices
        )

    def _ddeath(self, parsed: Topic, payload: Payload, received_us: int, out: _Builder) -> None:
        # Offline is offline: the device is reported dead even when its seq reveals a gap.
        assert parsed.device is not None
        out.deaths.append(Death(parsed.device_key, "DDEATH"))
        node = self._nodes.get(parsed.node_key)
        if node is None or not node.born:
            return
        _forget(node, parsed.device)
        if not node.awaiting_rebirth:
            self._check_seq(node, parsed, payload, received_us, out)

    # -- data ------------------------------------------------------------------------------

    def _data(self, parsed: Topic, payload: Payload, received_us: int, out: _Builder) -> None:
        node = self._session_for_data(parsed, payload, received_us, out)
        if node is None:
            return
        device = node.node if parsed.device is None else node.devices.get(parsed.device)
        if device is None:
            self._request_rebirth(
                node, parsed, received_us, "DDATA of a device without DBIRTH", out
            )
            return
        resolved: list[tuple[_MetricDef, Metric]] = []
        for metric in payload.metrics:
            if metric.name is None and metric.alias is None:
                out.problem("metric with neither name nor alias", parsed.device_key)
                continue
            definition = self._resolve(node, device, parsed.device, metric)
            if definition is None:
                what = (
                    f"name {metric.name!r}" if metric.name is not None else f"alias {metric.alias}"
                )
                self._request_rebirth(node, parsed, received_us, f"unknown metric {what}", out)
                return
            resolved.append((definition, metric))
        for definition, metric in resolved:
            if definition.supported:
                self._read(definition, metric, payload, parsed.device_key, out)

    def _session_for_data(
        self, parsed: Topic, payload: Payload, received_us: int, out: _Builder
    ) -> _Node | None:
        """The node's session when the message may be used: born, not awaiting, seq in order."""
        node = self._nodes.setdefault(parsed.node_key, _Node())
        if not node.born:
            self._request_rebirth(
                node, parsed, received_us, f"{parsed.message_type} before NBIRTH", out
            )
            return None
        if node.awaiting_rebirth:
            out.problem("awaiting rebirth", parsed.device_key)
            self._retry_rebirth(node, parsed, received_us, out)
            return None
        if not self._check_seq(node, parsed, payload, received_us, out):
            return None
        return node

    def _check_seq(
        self, node: _Node, parsed: Topic, payload: Payload, received_us: int, out: _Builder
    ) -> bool:
        expected = next_seq(node.seq)
        if payload.seq != expected:
            reason = f"seq {payload.seq} where {expected} was expected"
            self._request_rebirth(node, parsed, received_us, reason, out)
            return False
        node.seq = expected
        return True

    @staticmethod
    def _resolve(
        node: _Node, device: _Device, device_id: str | None, metric: Metric
    ) -> _MetricDef | None:
        if metric.name is not None:
            return device.by_name.get(metric.name)
        owner = node.aliases.get(metric.alias) if metric.alias is not None else None
        if owner is None or owner[0] != device_id:
            return None  # an alias of another device is as unusable as an unknown one
        return device.by_name.get(owner[1])

    def _read(
        self,
        definition: _MetricDef,
        metric: Metric,
        payload: Payload,
        device_key: str,
        out: _Builder,
    ) -> None:
        if metric.datatype is not None and metric.datatype != definition.datatype:
            out.problem(
                f"metric {definition.name!r}: datatype {datatype_name(metric.datatype)} where the "
                f"BIRTH declared {datatype_name(definition.datatype)}",
                device_key,
            )
            return
        ts_us = _ts_us(metric, payload, out.received_us)
        value: Value | None = None
        quality = Quality.GOOD
        if metric.is_null:
            quality = Quality.BAD
        else:
            try:
                value = convert_value(definition.datatype, metric.raw)
            except PayloadError as error:
                out.problem(f"metric {definition.name!r}: {error.detail}", device_key)
                return
        reading = Reading(definition.tag, ts_us, value, quality)
        out.readings.setdefault(device_key, []).append(reading)

    # -- rebirth ---------------------------------------------------------------------------

    def _request_rebirth(
        self, node: _Node, parsed: Topic, received_us: int, reason: str, out: _Builder
    ) -> None:
        out.problem(reason, parsed.device_key)
        if node.awaiting_rebirth:
            self._retry_rebirth(node, parsed, received_us, out)
            return
        node.awaiting_rebirth = True
        self._emit_rebirth(node, parsed, received_us, reason, out)

    def _retry_rebirth(self, node: _Node, parsed: Topic, received_us: int, out: _Builder) -> None:
        requested = node.rebirth_requested_us
        if requested is None or received_us - requested >= self._rebirth_retry_us:
            self._emit_rebirth(node, parsed, received_us, "no NBIRTH after a rebirth request", out)

    @staticmethod
    def _emit_rebirth(
        node: _Node, parsed: Topic, received_us: int, reason: str, out: _Builder
    ) -> None:
        node.rebirth_requested_us = received_us
        out.rebirths.append(
            RebirthRequest(
                topic(parsed.group, MessageType.NCMD, parsed.edge_node),
                encode_rebirth(timestamp_ms=received_us // 1000),
                reason,
            )
        )
