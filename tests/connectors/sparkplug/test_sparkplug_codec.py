"""Sparkplug B codec: topics, payload decoding, value conversion and the encoders."""

from __future__ import annotations

import pytest

from clusterbrain.connectors.source import Value
from clusterbrain.connectors.sparkplug import codec
from clusterbrain.connectors.sparkplug import sparkplug_b_pb2 as pb
from clusterbrain.connectors.sparkplug.codec import (
    BDSEQ_METRIC,
    REBIRTH_METRIC,
    DataType,
    MessageType,
    Payload,
    PayloadError,
    Topic,
    TopicError,
    UnsupportedDataType,
    convert_value,
    decode_payload,
    encode_payload,
    metric,
    parse_topic,
)


def test_datatype_numbers_are_those_of_the_proto() -> None:
    assert {t.name: t.value for t in DataType} == dict(pb.DataType.items())


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("spBv1.0/g/NBIRTH/n", Topic("g", MessageType.NBIRTH, "n")),
        ("spBv1.0/g/NDATA/n", Topic("g", MessageType.NDATA, "n")),
        ("spBv1.0/g/NDEATH/n", Topic("g", MessageType.NDEATH, "n")),
        ("spBv1.0/g/NCMD/n", Topic("g", MessageType.NCMD, "n")),
        ("spBv1.0/g/DBIRTH/n/d", Topic("g", MessageType.DBIRTH, "n", "d")),
        ("spBv1.0/g/DDATA/n/d", Topic("g", MessageType.DDATA, "n", "d")),
        ("spBv1.0/g/DDEATH/n/d", Topic("g", MessageType.DDEATH, "n", "d")),
        ("spBv1.0/g/DCMD/n/d", Topic("g", MessageType.DCMD, "n", "d")),
        ("spBv1.0/STATE/scada-1", Topic("", MessageType.STATE, "scada-1")),
    ],
)
def test_parse_topic(topic: str, expected: Topic) -> None:
    assert parse_topic(topic) == expected
    assert str(expected) == topic


def test_device_and_node_keys() -> None:
    assert parse_topic("spBv1.0/g/DDATA/n/d").device_key == "g/n/d"
    assert parse_topic("spBv1.0/g/DDATA/n/d").node_key == "g/n"
    assert parse_topic("spBv1.0/g/NDATA/n").device_key == "g/n"


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("spAv1.0/g/NDATA/n", "namespace"),
        ("cb/v1/dev/telemetry", "namespace"),
        ("spBv1.0/g/NDATA", "expected"),
        ("spBv1.0/g/DDATA/n/d/extra", "expected"),
        ("spBv1.0/g/XDATA/n", "unknown message type"),
        ("spBv1.0/g/DDATA/n", "needs a device id"),
        ("spBv1.0/g/NDATA/n/d", "takes no device id"),
        ("spBv1.0//NDATA/n", "empty group id"),
        ("spBv1.0/g/NDATA/", "empty edge node id"),
        ("spBv1.0/g/DDATA/n/", "empty device id"),
        ("spBv1.0/g/NDATA/n+", "wildcard"),
        ("spBv1.0/g/STATE/n", "STATE is"),
        ("spBv1.0/STATE/", "empty host id"),
    ],
)
def test_bad_topics_say_why(topic: str, reason: str) -> None:
    with pytest.raises(TopicError, match=reason):
        parse_topic(topic)


def test_nbirth_carries_bdseq_and_the_rebirth_control_first() -> None:
    data = codec.encode_nbirth(
        7, (metric("Temperature", DataType.Double, 21.5, alias=1),), timestamp_ms=1000
    )
    payload = decode_payload(data)
    assert payload.seq == 0 and payload.timestamp_ms == 1000
    assert [m.name for m in payload.metrics] == [BDSEQ_METRIC, REBIRTH_METRIC, "Temperature"]
    bd_seq = payload.metric(BDSEQ_METRIC)
    assert bd_seq is not None and bd_seq.value == 7 and bd_seq.datatype == DataType.Int64
    temperature = payload.metric("Temperature")
    assert temperature is not None
    assert (temperature.alias, temperature.value, temperature.datatype) == (1, 21.5, 10)


def test_ndeath_has_bdseq_and_no_seq() -> None:
    payload = decode_payload(codec.encode_ndeath(3))
    assert payload.seq is None
    assert [(m.name, m.value) for m in payload.metrics] == [(BDSEQ_METRIC, 3)]


def test_ddeath_and_data() -> None:
    assert decode_payload(codec.encode_ddeath(seq=4, timestamp_ms=9)) == Payload(9, 4)
    data = codec.encode_data((metric(None, DataType.Int32, -5, alias=2),), seq=5, timestamp_ms=9)
    (only,) = decode_payload(data).metrics
    assert (only.name, only.alias, only.value) == (None, 2, -5)


def test_rebirth_command() -> None:
    payload = decode_payload(codec.encode_rebirth(timestamp_ms=42))
    assert payload.seq is None and payload.timestamp_ms == 42
    (rebirth,) = payload.metrics
    assert (rebirth.name, rebirth.datatype, rebirth.value) == (REBIRTH_METRIC, 11, True)


def test_null_metric_round_trip() -> None:
    (decoded,) = decode_payload(
        encode_payload(Payload(metrics=(metric("Speed", DataType.Float, None),)))
    ).metrics
    assert decoded.is_null and decoded.value is None and decoded.raw is None
    assert decoded.datatype == DataType.Float


def test_historical_and_transient_flags() -> None:
    sent = codec.Metric("x", datatype=DataType.Boolean, value=True, is_historical=True)
    (decoded,) = decode_payload(encode_payload(Payload(metrics=(sent,)))).metrics
    assert decoded.is_historical and not decoded.is_transient


def _pb_metric(**fields: object) -> bytes:
    message = pb.Payload()
    message.metrics.add(**fields)
    return bytes(message.SerializeToString())


@pytest.mark.parametrize(
    ("datatype", "wire", "expected"),
    [
        (DataType.Int8, 0xFF, -1),  # Tahu Python: two's complement in 8 bits
        (DataType.Int8, 0xFFFF_FFFF, -1),  # Tahu Java: sign-extended to 32 bits
        (DataType.Int8, 0x7F, 127),
        (DataType.Int16, 0x8000, -32768),
        (DataType.Int16, 0xFFFF_8000, -32768),
        (DataType.Int32, 0xFFFF_FFFF, -1),
        (DataType.UInt32, 0xFFFF_FFFF, 0xFFFF_FFFF),
    ],
)
def test_signed_integers_in_both_widths(datatype: DataType, wire: int, expected: int) -> None:
    (decoded,) = decode_payload(_pb_metric(name="x", datatype=datatype, int_value=wire)).metrics
    assert decoded.value == expected


def test_int64_and_datetime_use_long_value() -> None:
    (decoded,) = decode_payload(
        _pb_metric(name="x", datatype=DataType.Int64, long_value=2**64 - 1)
    ).metrics
    assert decoded.value == -1
    (decoded,) = decode_payload(
        _pb_metric(name="t", datatype=DataType.DateTime, long_value=1_700_000_000_123)
    ).metrics
    assert decoded.value == 1_700_000_000_123


@pytest.mark.parametrize(
    ("datatype", "raw", "error", "reason"),
    [
        (DataType.Int8, 300, PayloadError, "does not fit a signed 8-bit"),
        (DataType.UInt8, 256, PayloadError, "does not fit UInt8"),
        (DataType.Int32, "12", PayloadError, "carries a str"),
        (DataType.Double, 1, PayloadError, "carries a int"),
        (DataType.Boolean, 1, PayloadError, "carries a int"),
        (DataType.String, True, PayloadError, "carries a bool"),
        (DataType.Int32, None, PayloadError, "without a value"),
        (DataType.DataSet, None, UnsupportedDataType, "DataSet is not supported"),
        (DataType.Bytes, b"x", UnsupportedDataType, "Bytes is not supported"),
        (DataType.Int32Array, b"x", UnsupportedDataType, "Int32Array is not supported"),
        (99, 1, UnsupportedDataType, "datatype 99"),
    ],
)
def test_convert_value_refuses(
    datatype: int, raw: codec.RawValue | None, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        convert_value(datatype, raw)


def test_a_bad_value_does_not_stop_decoding() -> None:
    (decoded,) = decode_payload(
        _pb_metric(name="x", datatype=DataType.Int32, string_value="a")
    ).metrics
    assert decoded.value is None and decoded.raw == "a"


def test_datatype_may_be_left_to_the_birth() -> None:
    (decoded,) = decode_payload(_pb_metric(alias=4, int_value=0xFFFF)).metrics
    assert decoded.datatype is None and decoded.value is None and decoded.raw == 0xFFFF
    assert convert_value(DataType.Int16, decoded.raw) == -1


def test_data_sets_decode_without_a_value() -> None:
    message = pb.Payload()
    m = message.metrics.add(name="table", datatype=DataType.DataSet)
    m.dataset_value.num_of_columns = 1
    (decoded,) = decode_payload(message.SerializeToString()).metrics
    assert decoded.datatype == DataType.DataSet and decoded.raw is None and decoded.value is None


@pytest.mark.parametrize(
    ("datatype", "value", "reason"),
    [
        (DataType.Int8, 128, "does not fit Int8"),
        (DataType.Int8, -129, "does not fit Int8"),
        (DataType.UInt16, -1, "does not fit UInt16"),
        (DataType.UInt64, 2**64, "does not fit UInt64"),
        (DataType.Int32, True, "needs an int"),
        (DataType.Int32, 1.5, "needs an int"),
        (DataType.Double, "1", "needs a number"),
        (DataType.Boolean, 1, "needs a bool"),
        (DataType.Text, 1, "needs a str"),
        (DataType.Template, 1, "not supported"),
    ],
)
def test_encoding_refuses_values_that_do_not_fit(
    datatype: DataType, value: Value, reason: str
) -> None:
    with pytest.raises(PayloadError, match=reason):
        encode_payload(Payload(metrics=(metric("x", datatype, value),)))


def test_floats_are_rounded_to_32_bits() -> None:
    (decoded,) = decode_payload(
        encode_payload(Payload(metrics=(metric("x", DataType.Float, 0.1),)))
    ).metrics
    assert decoded.value != 0.1 and decoded.value == pytest.approx(0.1, rel=1e-7)


@pytest.mark.parametrize("data", [b"\xff", b"\x0a\x05abc", b"\x12\x03\x0a\x01\xff"])
def test_malformed_payloads(data: bytes) -> None:
    with pytest.raises(PayloadError, match="malformed"):
        decode_payload(data)
