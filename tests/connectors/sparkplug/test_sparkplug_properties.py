"""Properties of the Sparkplug B codec and sessions (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterbrain.connectors.source import Value
from clusterbrain.connectors.sparkplug import sparkplug_b_pb2 as pb
from clusterbrain.connectors.sparkplug.codec import (
    SUPPORTED_DATATYPES,
    DataType,
    MessageType,
    Metric,
    PayloadError,
    TopicError,
    convert_value,
    decode_payload,
    encode_payload,
    metric,
    parse_topic,
)
from clusterbrain.connectors.sparkplug.codec import Payload as SparkplugPayload
from clusterbrain.connectors.sparkplug.session import EdgeNodeSessions
from connectors.sparkplug.edge_node import EdgeNode, Message

RECEIVED_US = 1_700_000_000_000_000
TEXT = st.text(st.characters(codec="utf-8"), max_size=20)


def values_of(datatype: DataType) -> st.SearchStrategy[Value]:
    signed = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.Int64: 64}
    unsigned = {DataType.UInt8: 8, DataType.UInt16: 16, DataType.UInt32: 32, DataType.UInt64: 64}
    if datatype in signed:
        bits = signed[datatype]
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if datatype in unsigned:
        return st.integers(0, (1 << unsigned[datatype]) - 1)
    if datatype is DataType.DateTime:
        return st.integers(0, (1 << 64) - 1)
    if datatype is DataType.Float:
        return st.floats(width=32, allow_nan=False)
    if datatype is DataType.Double:
        return st.floats(allow_nan=False)
    if datatype is DataType.Boolean:
        return st.booleans()
    return TEXT


SUPPORTED = sorted(SUPPORTED_DATATYPES)


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[DataType, Value]:
    datatype = draw(st.sampled_from(SUPPORTED))
    return datatype, draw(values_of(datatype))


@settings(max_examples=300, deadline=None)
@given(
    typed=typed_values(),
    name=st.none() | TEXT,
    alias=st.none() | st.integers(0, (1 << 64) - 1),
    timestamp_ms=st.none() | st.integers(0, (1 << 64) - 1),
    is_historical=st.booleans(),
    seq=st.integers(0, 255),
)
def test_encode_decode_round_trip_for_every_supported_datatype(
    typed: tuple[DataType, Value],
    name: str | None,
    alias: int | None,
    timestamp_ms: int | None,
    is_historical: bool,
    seq: int,
) -> None:
    datatype, value = typed
    sent = metric(
        name, datatype, value, alias=alias, timestamp_ms=timestamp_ms, is_historical=is_historical
    )
    payload = decode_payload(encode_payload(SparkplugPayload(1, seq, (sent,))))
    assert payload.seq == seq
    (received,) = payload.metrics
    assert received.value == value and type(received.value) is type(value)
    assert (received.name, received.alias, received.timestamp_ms, received.datatype) == (
        name,
        alias,
        timestamp_ms,
        datatype,
    )
    assert received.is_historical == is_historical and not received.is_null
    # DATA may leave the datatype to the BIRTH: the wire value converts the same way
    assert convert_value(datatype, received.raw) == value


@given(datatype=st.sampled_from(SUPPORTED))
def test_null_round_trip_for_every_supported_datatype(datatype: DataType) -> None:
    (received,) = decode_payload(
        encode_payload(SparkplugPayload(metrics=(metric("x", datatype, None),)))
    ).metrics
    assert received.is_null and received.value is None and received.datatype == datatype


# -- sequences of messages of one edge node ----------------------------------------------------

DEVICES = ("press", "oven", "robot")
DEVICE_METRICS = (
    ("Speed", DataType.Double),
    ("Count", DataType.Int32),
    ("Running", DataType.Boolean),
)


@dataclass
class Script:
    """The messages of one edge node after its NBIRTH, and how many values they carry."""

    messages: list[Message]
    values: int


def _device_metric(device: int, index: int, value: Value, by_alias: bool) -> Metric:
    name, datatype = DEVICE_METRICS[index]
    alias = 10 * (device + 1) + index
    return metric(None if by_alias else name, datatype, value, alias=alias)


@st.composite
def scripts(draw: st.DrawFn, min_actions: int = 0) -> Script:
    node = EdgeNode(bd_seq=draw(st.integers(0, 255)))
    messages = [
        node.nbirth(
            metric("Voltage", DataType.Float, 230.0, alias=1), seq=draw(st.integers(0, 255))
        )
    ]
    values, online = 1, set[int]()
    for _ in range(draw(st.integers(min_actions, 25))):
        action = draw(st.sampled_from(("ndata", "ddata", "ddeath", "dbirth")))
        device = draw(st.integers(0, len(DEVICES) - 1))
        if action == "ndata":
            voltage = draw(st.floats(200, 250, width=32))
            by_alias = draw(st.booleans())
            messages.append(
                node.ndata(
                    metric(None if by_alias else "Voltage", DataType.Float, voltage, alias=1)
                )
            )
            values += 1
        elif action == "ddeath" and device in online:
            messages.append(node.ddeath(DEVICES[device]))
            online.discard(device)
        elif action == "ddata" and device in online:
            chosen = draw(st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True))
            by_alias = draw(st.booleans())
            metrics = []
            for index in chosen:
                value = draw(values_of(DEVICE_METRICS[index][1]))
                metrics.append(_device_metric(device, index, value, by_alias))
            messages.append(node.ddata(DEVICES[device], *metrics))
            values += len(metrics)
        else:
            birth = [
                metric(name, datatype, draw(values_of(datatype)), alias=10 * (device + 1) + index)
                for index, (name, datatype) in enumerate(DEVICE_METRICS)
            ]
            messages.append(node.dbirth(DEVICES[device], *birth))
            online.add(device)
            values += len(birth)
    return Script(messages, values)


def _feed(messages: list[Message]) -> tuple[int, int, int]:
    """Rebirth requests, problems and readings of a run, at one message per millisecond."""
    sessions = EdgeNodeSessions()
    rebirths = problems = readings = 0
    for number, (topic, payload) in enumerate(messages):
        outcome = sessions.handle(topic, payload, RECEIVED_US + number * 1000)
        rebirths += len(outcome.rebirths)
        problems += len(outcome.problems)
        readings += sum(len(values) for values in outcome.readings.values())
    return rebirths, problems, readings


@settings(max_examples=100, deadline=None)
@given(script=scripts())
def test_messages_in_seq_order_never_ask_for_a_rebirth(script: Script) -> None:
    assert _feed(script.messages) == (0, 0, script.values)


@settings(max_examples=100, deadline=None)
@given(script=scripts(min_actions=2), data=st.data())
def test_one_lost_message_asks_for_exactly_one_rebirth(script: Script, data: st.DataObject) -> None:
    # the loss shows when the next message arrives, so the lost one is never the last
    lost = data.draw(st.integers(1, len(script.messages) - 2))
    rebirths, problems, _ = _feed(script.messages[:lost] + script.messages[lost + 1 :])
    assert rebirths == 1 and problems >= 1


# -- whatever arrives, handle() reports instead of raising ---------------------------------

TOPICS = st.sampled_from(
    [
        "spBv1.0/plant1/NBIRTH/gw1",
        "spBv1.0/plant1/NDATA/gw1",
        "spBv1.0/plant1/NDEATH/gw1",
        "spBv1.0/plant1/DBIRTH/gw1/press",
        "spBv1.0/plant1/DDATA/gw1/press",
        "spBv1.0/plant1/DDEATH/gw1/press",
        "spBv1.0/plant1/NCMD/gw1",
        "spBv1.0/STATE/host",
    ]
) | st.text(max_size=40)


def _born_sessions() -> EdgeNodeSessions:
    sessions = EdgeNodeSessions()
    node = EdgeNode()
    for topic, payload in (
        node.nbirth(metric("Voltage", DataType.Float, 1.0, alias=1)),
        node.dbirth("press", metric("Speed", DataType.Double, 1.0, alias=2)),
    ):
        sessions.handle(topic, payload, RECEIVED_US)
    return sessions


@settings(max_examples=300, deadline=None)
@given(topic=TOPICS, data=st.binary(max_size=120))
def test_random_bytes_never_raise(topic: str, data: bytes) -> None:
    outcome = _born_sessions().handle(topic, data, RECEIVED_US)
    try:
        parsed = parse_topic(topic)
    except TopicError:
        assert outcome.problems and outcome.problems[0].reason.startswith("bad topic")
        return
    if parsed.message_type in (MessageType.NCMD, MessageType.DCMD, MessageType.STATE):
        assert outcome.ignored
        return
    try:
        decode_payload(data)
    except PayloadError:
        assert [p.reason[:29] for p in outcome.problems] == ["malformed Sparkplug B payload"]


@st.composite
def wire_payloads(draw: st.DrawFn) -> bytes:
    """Well-formed protobuf with any mix of fields, sensible or not."""
    message = pb.Payload()
    if draw(st.booleans()):
        message.timestamp = draw(st.integers(0, (1 << 64) - 1))
    if draw(st.booleans()):
        message.seq = draw(st.integers(0, 300))
    for _ in range(draw(st.integers(0, 4))):
        m = message.metrics.add()
        if draw(st.booleans()):
            m.name = draw(
                st.sampled_from(["Voltage", "Speed", "bdSeq", "Node Control/Rebirth"]) | TEXT
            )
        if draw(st.booleans()):
            m.alias = draw(st.integers(0, 4))
        if draw(st.booleans()):
            m.datatype = draw(st.integers(0, 40))
        m.is_null = draw(st.booleans())
        field = draw(
            st.sampled_from(
                [
                    "",
                    "int_value",
                    "long_value",
                    "float_value",
                    "double_value",
                    "boolean_value",
                    "string_value",
                    "bytes_value",
                ]
            )
        )
        strategies = {
            "int_value": st.integers(0, (1 << 32) - 1),
            "long_value": st.integers(0, (1 << 64) - 1),
            "float_value": st.floats(width=32),
            "double_value": st.floats(),
            "boolean_value": st.booleans(),
            "string_value": TEXT,
            "bytes_value": st.binary(max_size=8),
        }
        if field:
            setattr(m, field, draw(strategies[field]))
    return bytes(message.SerializeToString())


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(st.tuples(TOPICS, wire_payloads()), max_size=8))
def test_any_well_formed_payload_sequence_never_raises(messages: list[tuple[str, bytes]]) -> None:
    sessions = _born_sessions()
    for number, (topic, payload) in enumerate(messages):
        sessions.handle(topic, payload, RECEIVED_US + number)
