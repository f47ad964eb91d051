"""Sparkplug B topics and payloads as plain values: parse, decode, convert and encode (no I/O).

Topic namespace (Sparkplug 3.0): ``spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]``,
and ``spBv1.0/STATE/<host_id>`` for host applications. Payloads are the protobuf ``Payload`` of
Eclipse Tahu's ``sparkplug_b.proto``; the generated module stays inside this file, so callers
only see the dataclasses below.

Integers travel unsigned: ``Int8``/``Int16``/``Int32`` in the 32-bit ``int_value``, ``Int64`` in
the 64-bit ``long_value``, negative numbers in two's complement. Encoders differ in the width
(Tahu's Python adds ``2**8`` to a negative ``Int8``, its Java sign-extends to 32 bits), so the
decoder accepts both and the encoder writes the narrow form.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final, TypeGuard

from google.protobuf.message import DecodeError

from clusterbrain.connectors.source import Value
from clusterbrain.connectors.sparkplug import sparkplug_b_pb2 as pb
from clusterbrain.platform.errors import InvalidInput

NAMESPACE: Final = "spBv1.0"
BDSEQ_METRIC: Final = "bdSeq"
REBIRTH_METRIC: Final = "Node Control/Rebirth"
SEQ_MODULUS: Final = 256

RawValue = int | float | bool | str | bytes
"""A metric's value as carried in the protobuf ``value`` oneof, before conversion."""


class DataType(enum.IntEnum):
    """Sparkplug B datatypes, with the numbers of the ``DataType`` enum in sparkplug_b.proto."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21
    Int8Array = 22
    Int16Array = 23
    Int32Array = 24
    Int64Array = 25
    UInt8Array = 26
    UInt16Array = 27
    UInt32Array = 28
    UInt64Array = 29
    FloatArray = 30
    DoubleArray = 31
    BooleanArray = 32
    StringArray = 33
    DateTimeArray = 34


SIGNED_BITS: Final = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.Int64: 64}
UNSIGNED_BITS: Final = {
    DataType.UInt8: 8,
    DataType.UInt16: 16,
    DataType.UInt32: 32,
    DataType.UInt64: 64,
}
SUPPORTED_DATATYPES: Final = frozenset(
    {
        *SIGNED_BITS,
        *UNSIGNED_BITS,
        DataType.Float,
        DataType.Double,
        DataType.Boolean,
        DataType.String,
        DataType.DateTime,
        DataType.Text,
    }
)
"""Scalar types that map to one tag value; arrays, data sets, templates, bytes and files do not."""


class MessageType(enum.StrEnum):
    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    NDATA = "NDATA"
    DDATA = "DDATA"
    NCMD = "NCMD"
    DCMD = "DCMD"
    STATE = "STATE"

    @property
    def is_device(self) -> bool:
        """Whether the topic carries a device id."""
        return self in _DEVICE_MESSAGES


_DEVICE_MESSAGES: Final = frozenset(
    {MessageType.DBIRTH, MessageType.DDEATH, MessageType.DDATA, MessageType.DCMD}
)


class SparkplugError(InvalidInput):
    """A Sparkplug topic or payload that cannot be used; ``detail`` says why."""


class TopicError(SparkplugError):
    pass


class PayloadError(SparkplugError):
    pass


class UnsupportedDataType(PayloadError):
    pass


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed Sparkplug topic; for ``STATE`` the host application id is in ``edge_node``."""

    group: str
    message_type: MessageType
    edge_node: str
    device: str | None = None

    @property
    def node_key(self) -> str:
        return f"{self.group}/{self.edge_node}"

    @property
    def device_key(self) -> str:
        """``group/edge_node`` for node messages, ``group/edge_node/device`` for device ones."""
        return self.node_key if self.device is None else f"{self.node_key}/{self.device}"

    def __str__(self) -> str:
        if self.message_type is MessageType.STATE:
            return f"{NAMESPACE}/STATE/{self.edge_node}"
        parts = [NAMESPACE, self.group, self.message_type.value, self.edge_node]
        if self.device is not None:
            parts.append(self.device)
        return "/".join(parts)


def _check_id(kind: str, value: str) -> None:
    if not value:
        raise TopicError(f"empty {kind}")
    if "+" in value or "#" in value:
        raise TopicError(f"{kind} {value!r} contains an MQTT wildcard")


def parse_topic(topic: str) -> Topic:
    """Split a Sparkplug topic into its parts, or raise TopicError saying what is wrong.

    >>> parse_topic("spBv1.0/plant1/DDATA/gw-3/press-7")
    Topic(group='plant1', message_type=<MessageType.DDATA: 'DDATA'>, edge_node='gw-3', device='press-7')
    >>> parse_topic("spBv1.0/plant1/NDATA/gw-3").device_key
    'plant1/gw-3'
    >>> parse_topic("spBv1.0/plant1/DDATA/gw-3")
    Traceback (most recent call last):
    ...
    clusterbrain.connectors.sparkplug.codec.TopicError: DDATA needs a device id: spBv1.0/plant1/DDATA/gw-3
    """
    parts = topic.split("/")
    if parts[0] != NAMESPACE:
        raise TopicError(f"not in the {NAMESPACE} namespace: {topic}")
    if len(parts) == 3 and parts[1] == MessageType.STATE:
        _check_id("host id", parts[2])
        return Topic("", MessageType.STATE, parts[2])
    if len(parts) not in (4, 5):
        raise TopicError(f"expected {NAMESPACE}/group/type/edge_node[/device]: {topic}")
    try:
        message_type = MessageType(parts[2])
    except ValueError:
        raise TopicError(f"unknown message type {parts[2]!r}: {topic}") from None
    if message_type is MessageType.STATE:
        raise TopicError(f"STATE is {NAMESPACE}/STATE/<host_id>: {topic}")
    if message_type.is_device != (len(parts) == 5):
        needs = "needs a device id" if message_type.is_device else "takes no device id"
        raise TopicError(f"{message_type} {needs}: {topic}")
    _check_id("group id", parts[1])
    _check_id("edge node id", parts[3])
    device = parts[4] if len(parts) == 5 else None
    if device is not None:
        _check_id("device id", device)
    return Topic(parts[1], message_type, parts[3], device)


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric of a payload.

    ``value`` is converted by the metric's own ``datatype``; it is None when the metric is null,
    carries no datatype (DATA messages may leave it to the BIRTH) or has an unsupported one.
    ``raw`` keeps the wire value so that a caller knowing the datatype from the BIRTH can
    convert it with ``convert_value``.
    """

    name: str | None = None
    alias: int | None = None
    timestamp_ms: int | None = None
    datatype: int | None = None
    value: Value | None = None
    is_null: bool = False
    is_historical: bool = False
    is_transient: bool = False
    raw: RawValue | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    timestamp_ms: int | None = None
    """Milliseconds since the epoch, UTC, when the payload was built."""
    seq: int | None = None
    metrics: tuple[Metric, ...] = ()
    uuid: str | None = None
    body: bytes | None = None

    def metric(self, name: str) -> Metric | None:
        """The first metric called ``name``."""
        return next((m for m in self.metrics if m.name == name), None)


def datatype_name(datatype: int) -> str:
    """
    >>> datatype_name(9), datatype_name(99)
    ('Float', '99')
    """
    try:
        return DataType(datatype).name
    except ValueError:
        return str(datatype)


def _is_int(raw: object) -> TypeGuard[int]:
    return isinstance(raw, int) and not isinstance(raw, bool)


def _signed(raw: int, bits: int) -> int:
    """Two's complement of ``bits`` bits, written either narrow or sign-extended to 32 bits.

    >>> _signed(255, 8), _signed(0xFFFF_FFFF, 8), _signed(127, 8), _signed(2**64 - 2, 64)
    (-1, -1, 127, -2)
    """
    if 0 <= raw < 1 << bits:
        return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw
    if bits < 32 and (1 << 32) - (1 << (bits - 1)) <= raw < 1 << 32:
        return raw - (1 << 32)
    raise PayloadError(f"{raw} does not fit a signed {bits}-bit integer")


def convert_value(datatype: int, raw: RawValue | None) -> Value:
    """The tag value of a wire value of ``datatype``; PayloadError when they do not go together.

    DateTime stays an int (milliseconds since the epoch, UTC).

    >>> convert_value(DataType.Int16, 65535), convert_value(DataType.Boolean, True)
    (-1, True)
    >>> convert_value(DataType.DataSet, None)
    Traceback (most recent call last):
    ...
    clusterbrain.connectors.sparkplug.codec.UnsupportedDataType: datatype DataSet is not supported
    """
    if datatype not in SUPPORTED_DATATYPES:
        raise UnsupportedDataType(f"datatype {datatype_name(datatype)} is not supported")
    kind = DataType(datatype)
    if raw is None:
        raise PayloadError(f"{kind.name} metric without a value")
    if kind in SIGNED_BITS and _is_int(raw):
        return _signed(raw, SIGNED_BITS[kind])
    if (kind in UNSIGNED_BITS or kind is DataType.DateTime) and _is_int(raw):
        if raw >= 1 << UNSIGNED_BITS.get(kind, 64):
            raise PayloadError(f"{raw} does not fit {kind.name}")
        return raw
    if kind in (DataType.Float, DataType.Double) and isinstance(raw, float):
        return raw
    if kind is DataType.Boolean and isinstance(raw, bool):
        return raw
    if kind in (DataType.String, DataType.Text) and isinstance(raw, str):
        return raw
    raise PayloadError(f"{kind.name} metric carries a {type(raw).__name__} value")


_SCALAR_FIELDS: Final = frozenset(
    {"int_value", "long_value", "float_value", "double_value", "boolean_value", "string_value"}
)


def _text(value: object, what: str) -> str:
    """A proto2 string field; upb hands out invalid UTF-8 as bytes instead of refusing it."""
    if not isinstance(value, str):
        raise PayloadError(f"malformed Sparkplug B payload: {what} is not valid UTF-8")
    return value


def _raw_of(metric: pb.Payload.Metric) -> RawValue | None:
    field = metric.WhichOneof("value")
    if field == "string_value":
        return _text(metric.string_value, "a string value")
    if field in _SCALAR_FIELDS or field == "bytes_value":
        raw: RawValue = getattr(metric, field)
        return raw
    return None  # data sets, templates and extensions: their datatype is unsupported anyway


def _metric_from_pb(metric: pb.Payload.Metric) -> Metric:
    datatype = int(metric.datatype) if metric.HasField("datatype") else None
    is_null = bool(metric.is_null)
    raw = _raw_of(metric)
    value: Value | None = None
    if datatype is not None and not is_null and datatype in SUPPORTED_DATATYPES:
        try:
            value = convert_value(datatype, raw)
        except PayloadError:
            value = None  # the session reports it with the metric's name; decoding goes on
    return Metric(
        name=_text(metric.name, "a metric name") if metric.HasField("name") else None,
        alias=int(metric.alias) if metric.HasField("alias") else None,
        timestamp_ms=int(metric.timestamp) if metric.HasField("timestamp") else None,
        datatype=datatype,
        value=value,
        is_null=is_null,
        is_historical=bool(metric.is_historical),
        is_transient=bool(metric.is_transient),
        raw=raw,
    )


def decode_payload(data: bytes) -> Payload:
    """Parse a Sparkplug B payload; PayloadError when the bytes are not one.

    >>> decode_payload(encode_payload(Payload(timestamp_ms=5, seq=1))).seq
    1
    >>> decode_payload(b"\\xff")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clusterbrain.connectors.sparkplug.codec.PayloadError: malformed Sparkplug B payload: ...
    """
    message = pb.Payload()
    try:
        message.ParseFromString(data)
        return Payload(
            timestamp_ms=int(message.timestamp) if message.HasField("timestamp") else None,
            seq=int(message.seq) if message.HasField("seq") else None,
            metrics=tuple(_metric_from_pb(m) for m in message.metrics),
            uuid=_text(message.uuid, "the uuid") if message.HasField("uuid") else None,
            body=bytes(message.body) if message.HasField("body") else None,
        )
    # DecodeError for bad wire data; the others for invalid UTF-8 in a string field or nesting too
    # deep, which the protobuf backends (upb, pure Python) raise differently.
    except (DecodeError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise PayloadError(f"malformed Sparkplug B payload: {error}") from None


def _float32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def _set_value(target: pb.Payload.Metric, datatype: int, value: Value) -> None:
    """Write ``value`` into the oneof field that Sparkplug uses for ``datatype``."""
    if datatype not in SUPPORTED_DATATYPES:
        raise UnsupportedDataType(f"datatype {datatype_name(datatype)} is not supported")
    kind = DataType(datatype)
    if kind in SIGNED_BITS or kind in UNSIGNED_BITS or kind is DataType.DateTime:
        if not _is_int(value):
            raise PayloadError(f"{kind.name} needs an int, not {value!r}")
        bits = SIGNED_BITS.get(kind) or UNSIGNED_BITS.get(kind, 64)
        low = -(1 << (bits - 1)) if kind in SIGNED_BITS else 0
        high = (1 << (bits - 1)) if kind in SIGNED_BITS else (1 << bits)
        if not low <= value < high:
            raise PayloadError(f"{value} does not fit {kind.name}")
        wire = value + (1 << bits) if value < 0 else value
        if bits == 64:
            target.long_value = wire
        else:
            target.int_value = wire
    elif kind in (DataType.Float, DataType.Double):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise PayloadError(f"{kind.name} needs a number, not {value!r}")
        if kind is DataType.Float:
            target.float_value = _float32(float(value))
        else:
            target.double_value = float(value)
    elif kind is DataType.Boolean:
        if not isinstance(value, bool):
            raise PayloadError(f"Boolean needs a bool, not {value!r}")
        target.boolean_value = value
    else:
        if not isinstance(value, str):
            raise PayloadError(f"{kind.name} needs a str, not {value!r}")
        target.string_value = value


def _metric_to_pb(metric: Metric, target: pb.Payload.Metric) -> None:
    if metric.name is not None:
        target.name = metric.name
    if metric.alias is not None:
        target.alias = metric.alias
    if metric.timestamp_ms is not None:
        target.timestamp = metric.timestamp_ms
    if metric.datatype is not None:
        target.datatype = metric.datatype
    if metric.is_historical:
        target.is_historical = True
    if metric.is_transient:
        target.is_transient = True
    if metric.is_null or metric.value is None:
        target.is_null = True
        return
    if metric.datatype is None:
        raise PayloadError(f"metric {metric.name or metric.alias} has a value but no datatype")
    _set_value(target, metric.datatype, metric.value)


def encode_payload(payload: Payload) -> bytes:
    """Serialise a payload; PayloadError when a metric's value does not fit its datatype."""
    message = pb.Payload()
    if payload.timestamp_ms is not None:
        message.timestamp = payload.timestamp_ms
    if payload.seq is not None:
        message.seq = payload.seq
    if payload.uuid is not None:
        message.uuid = payload.uuid
    if payload.body is not None:
        message.body = payload.body
    for metric in payload.metrics:
        _metric_to_pb(metric, message.metrics.add())
    return bytes(message.SerializeToString())


def metric(
    name: str | None,
    datatype: int,
    value: Value | None,
    *,
    alias: int | None = None,
    timestamp_ms: int | None = None,
    is_historical: bool = False,
) -> Metric:
    """A metric to encode; a ``value`` of None makes it a null metric.

    >>> metric("Temperature", DataType.Double, 21.5).is_null, metric("T", DataType.Double, None).is_null
    (False, True)
    """
    return Metric(
        name=name,
        alias=alias,
        timestamp_ms=timestamp_ms,
        datatype=int(datatype),
        value=value,
        is_null=value is None,
        is_historical=is_historical,
    )


def topic(
    group: str, message_type: MessageType | str, edge_node: str, device: str | None = None
) -> str:
    """The topic string of a message.

    >>> topic("plant1", "NCMD", "gw-3")
    'spBv1.0/plant1/NCMD/gw-3'
    """
    return str(Topic(group, MessageType(message_type), edge_node, device))


def encode_nbirth(
    bd_seq: int, metrics: tuple[Metric, ...] = (), *, timestamp_ms: int, seq: int = 0
) -> bytes:
    """An NBIRTH: the ``bdSeq`` of this MQTT session and ``Node Control/Rebirth`` first, as
    Sparkplug requires, then the node's own metrics with their current values."""
    control = (
        metric(BDSEQ_METRIC, DataType.Int64, bd_seq, timestamp_ms=timestamp_ms),
        metric(REBIRTH_METRIC, DataType.Boolean, False, timestamp_ms=timestamp_ms),
    )
    return encode_payload(Payload(timestamp_ms, seq, control + tuple(metrics)))


def encode_dbirth(metrics: tuple[Metric, ...], *, seq: int, timestamp_ms: int) -> bytes:
    return encode_payload(Payload(timestamp_ms, seq, tuple(metrics)))


def encode_data(metrics: tuple[Metric, ...], *, seq: int, timestamp_ms: int) -> bytes:
    """An NDATA or DDATA (same shape): metrics may carry only their alias."""
    return encode_payload(Payload(timestamp_ms, seq, tuple(metrics)))


encode_ndata = encode_data
encode_ddata = encode_data


def encode_ndeath(bd_seq: int) -> bytes:
    """An NDEATH (the MQTT will): only the ``bdSeq`` of the NBIRTH it belongs to, no seq."""
    return encode_payload(Payload(metrics=(metric(BDSEQ_METRIC, DataType.Int64, bd_seq),)))


def encode_ddeath(*, seq: int, timestamp_ms: int) -> bytes:
    return encode_payload(Payload(timestamp_ms, seq))


def encode_ncmd(metrics: tuple[Metric, ...], *, timestamp_ms: int) -> bytes:
    """A command to an edge node; commands come from hosts and carry no seq."""
    return encode_payload(Payload(timestamp_ms, None, tuple(metrics)))


def encode_rebirth(*, timestamp_ms: int) -> bytes:
    """The NCMD that asks an edge node to publish its NBIRTH and DBIRTHs again."""
    rebirth = metric(REBIRTH_METRIC, DataType.Boolean, True, timestamp_ms=timestamp_ms)
    return encode_ncmd((rebirth,), timestamp_ms=timestamp_ms)
