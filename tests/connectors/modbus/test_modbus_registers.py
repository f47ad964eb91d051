"""Register maps: validation errors that name the tag, codecs, writes and block planning."""

from __future__ import annotations

import itertools
import math
import re
import struct
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterbrain.connectors.modbus.registers import (
    BIT_TABLES,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    WIDTH,
    DataType,
    ModbusTag,
    Order,
    RegisterMapError,
    Table,
    block_decoder,
    connection_from_dict,
    decode_block,
    decode_value,
    device_from_dict,
    encode_value,
    encode_write,
    plan_blocks,
    raw_to_registers,
    registers_to_raw,
    tag_from_dict,
)

NUMBER_TYPES: list[DataType] = [
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
]
INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
ORDERS: list[Order] = ["big", "little"]


def device(*tags: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"name": "meter", "unit_id": 1, "tags": list(tags), **options}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ({"tag": "v", "address": 65535, "type": "float32"}, "float32 needs 2 registers"),
        ({"tag": "e", "address": 65534, "type": "float64"}, "address 65534 leaves 2"),
        ({"tag": "flag", "address": 3, "type": "bits", "bit": 16}, "bit index 0..15"),
        ({"tag": "flag", "address": 3, "type": "bits"}, "bit index 0..15"),
        ({"tag": "p", "address": 3, "bit": 2}, "bit is only for type bits"),
        ({"tag": "run", "table": "coil", "address": 0, "type": "uint16"}, "must be bool"),
        ({"tag": "run", "address": 0, "type": "bool"}, "type bool is for coils"),
        ({"tag": "p", "address": 70000}, "address must be an integer 0..65535"),
        ({"tag": "p", "address": -1}, "address must be an integer 0..65535"),
        ({"tag": "p", "address": 1.5}, "address must be an integer"),
        ({"tag": "p", "table": "input", "address": 0, "writable": True}, "read-only"),
        ({"tag": "p", "table": "discrete_input", "address": 0, "writable": True}, "read-only"),
        ({"tag": "p", "address": 0, "scale": 0}, "scale must not be 0"),
        (
            {"tag": "p", "address": 0, "min_value": 5, "max_value": 1},
            "min_value 5 is above max_value 1",
        ),
        ({"tag": "run", "table": "coil", "address": 0, "scale": 2}, "takes no scale"),
        ({"tag": "p", "adress": 0}, "unknown key 'adress'"),
        ({"tag": "p", "address": 0, "type": "float"}, "type must be one of"),
        ({"tag": "p", "address": 0, "table": "holdings"}, "table must be one of"),
        ({"tag": "p", "address": 0, "word_order": "middle"}, "word_order must be big or little"),
        ({"tag": "p", "address": 0, "writable": "yes"}, "writable must be true or false"),
        ({"tag": "bad name", "address": 0}, "a tag name must match"),
        ({"tag": "p"}, "address is missing"),
    ],
)
def test_a_bad_tag_is_refused_with_its_name_and_the_rule(tag: dict[str, Any], reason: str) -> None:
    with pytest.raises(RegisterMapError) as caught:
        device_from_dict(device(tag))
    assert f"tag {tag['tag']!r}" in str(caught.value)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (device({"tag": "a", "address": 0}, {"tag": "a", "address": 1}), "'a' is defined twice"),
        (
            device({"tag": "a", "address": 0}, poll_interval_ms=0),
            "the poll interval must be 1 ms to 24 h",
        ),
        (device({"tag": "a", "address": 0}, unit_id=256), "unit_id must be 0..255"),
        (device({"tag": "a", "address": 0}, max_registers=126), "max_registers must be 1..125"),
        (device({"tag": "a", "address": 0}, max_gap=-1), "max_gap must be an integer >= 0"),
        (
            device({"tag": "a", "address": 0, "type": "float64"}, max_registers=2),
            "needs 4 registers, more than max_registers 2",
        ),
        (device(), "at least one tag"),
        ({"name": "m", "tags": "x"}, "tags must be a list"),
    ],
)
def test_a_bad_device_is_refused_with_its_name(config: dict[str, Any], reason: str) -> None:
    with pytest.raises(RegisterMapError, match=re.escape(reason)):
        device_from_dict(config)


def test_a_connection_refuses_a_tag_name_used_by_two_devices() -> None:
    config = {
        "host": "127.0.0.1",
        "devices": [
            device({"tag": "power", "address": 0}),
            {"name": "compressor", "unit_id": 2, "tags": [{"tag": "power", "address": 4}]},
        ],
    }
    with pytest.raises(RegisterMapError, match="'power' is in devices 'meter' and 'compressor'"):
        connection_from_dict(config)
    with pytest.raises(RegisterMapError, match=r"retries must be 0\.\.10"):
        connection_from_dict({**config, "devices": config["devices"][:1], "retries": -1})


def test_tags_take_the_device_defaults_unless_they_set_their_own() -> None:
    parsed = device_from_dict(
        device(
            {"tag": "a", "address": 0, "type": "uint32"},
            {"tag": "b", "address": 2, "type": "uint32", "word_order": "big"},
            {"tag": "run", "table": "coil", "address": 0},
            unit_id=7,
            word_order="little",
            byte_order="little",
        )
    )
    a, b, run = parsed.tags
    assert (a.word_order, a.byte_order, a.unit_id) == ("little", "little", 7)
    assert (b.word_order, b.byte_order) == ("big", "little")
    assert (run.type, run.unit_id) == ("bool", 7)


# --------------------------------------------------------------------------- codecs


def test_the_four_orders_of_a_float32() -> None:
    # 1.5 is 0x3FC00000: AB CD in the standard order
    expected = {
        ("big", "big"): [0x3FC0, 0x0000],
        ("little", "big"): [0x0000, 0x3FC0],
        ("big", "little"): [0xC03F, 0x0000],
        ("little", "little"): [0x0000, 0xC03F],
    }
    for (word, byte), words in expected.items():
        assert raw_to_registers(1.5, "float32", word, byte) == words
        assert registers_to_raw(words, "float32", word, byte) == 1.5


def test_decoding_scales_rounds_and_keeps_ints() -> None:
    assert decode_value(ModbusTag("n", 0, type="int16"), [0xFFFE]) == -2
    assert isinstance(decode_value(ModbusTag("n", 0, type="uint32"), [0, 7]), int)
    assert decode_value(ModbusTag("t", 0, type="int16", scale=0.1, offset=-40), [653]) == 25.3
    assert decode_value(ModbusTag("v", 0, type="float32"), raw_to_registers(229.87, "float32")) == (
        229.87
    )
    assert decode_value(ModbusTag("b", 0, type="bits", bit=15), [0x8000]) is True
    nan = raw_to_registers(math.nan, "float32")
    assert decode_value(ModbusTag("v", 0, type="float32"), nan) is None


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        (ModbusTag("sp", 0, scale=0.01, writable=True), -1, "outside the uint16 range 0..65535"),
        (ModbusTag("sp", 0, scale=0.01, writable=True), 700, "raw 70000, outside the uint16"),
        (ModbusTag("sp", 0, writable=True, min_value=5, max_value=9), 9.5, "above the maximum 9"),
        (ModbusTag("sp", 0, writable=True, min_value=5, max_value=9), 4, "below the minimum 5"),
        (ModbusTag("sp", 0, writable=True), "7", "takes a number"),
        (ModbusTag("sp", 0, writable=True), True, "takes a number"),
        (ModbusTag("sp", 0, type="float32", writable=True), math.inf, "not a finite number"),
        (ModbusTag("sp", 0, type="float32", writable=True), 1e39, "beyond the float32 range"),
        (ModbusTag("run", 0, table="coil", type="bool", writable=True), 2, "true or false"),
        (ModbusTag("sp", 0), 1, "not writable"),
    ],
)
def test_a_write_out_of_range_says_why(tag: ModbusTag, value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        encode_write(tag, value)


def test_writes_choose_the_function_for_the_tag() -> None:
    coil = encode_write(ModbusTag("run", 4, table="coil", type="bool", writable=True), 0)
    assert (coil.function_code, coil.address, coil.coil) == (5, 4, False)
    double = encode_write(ModbusTag("limit", 8, type="float32", unit_id=3, writable=True), 2.5)
    assert (double.function_code, double.unit_id, double.registers) == (16, 3, (0x4020, 0))
    mask = encode_write(ModbusTag("lamp", 3, type="bits", bit=0, writable=True), False)
    assert (mask.function_code, mask.and_mask, mask.or_mask) == (22, 0xFFFE, 0)
    # (current AND and_mask) OR (or_mask AND NOT and_mask): the Modbus mask write formula
    assert (0xFFFF & mask.and_mask) | (mask.or_mask & ~mask.and_mask) == 0xFFFE


def test_an_unscaled_64_bit_counter_stays_exact() -> None:
    tag = ModbusTag("count", 0, type="uint64", writable=True)
    words = encode_value(tag, 2**64 - 1)
    assert words == [0xFFFF] * 4 and decode_value(tag, words) == 2**64 - 1


def test_a_short_answer_is_refused() -> None:
    block = plan_blocks([ModbusTag("a", 0, type="float32")])[0]
    with pytest.raises(ValueError, match="the answer has 1 registers"):
        decode_block(block, [1])


# --------------------------------------------------------------------------- properties


def _finite(data_type: DataType) -> st.SearchStrategy[float]:
    width = 32 if data_type == "float32" else 64
    return st.floats(allow_nan=False, allow_infinity=False, width=width)


def raw_values(data_type: DataType) -> st.SearchStrategy[int | float]:
    if data_type in INT_RANGES:
        lo, hi = INT_RANGES[data_type]
        return st.integers(lo, hi)
    return _finite(data_type)


@settings(max_examples=200, deadline=None)
@given(
    data_type=st.sampled_from(NUMBER_TYPES),
    word_order=st.sampled_from(ORDERS),
    byte_order=st.sampled_from(ORDERS),
    data=st.data(),
)
def test_registers_round_trip_for_every_type_and_order(
    data_type: DataType, word_order: Order, byte_order: Order, data: st.DataObject
) -> None:
    raw = data.draw(raw_values(data_type))
    words = raw_to_registers(raw, data_type, word_order, byte_order)
    assert len(words) == WIDTH[data_type] and all(0 <= w <= 0xFFFF for w in words)
    assert registers_to_raw(words, data_type, word_order, byte_order) == raw
    tag = ModbusTag(
        "t", 0, type=data_type, word_order=word_order, byte_order=byte_order, writable=True
    )
    value = decode_value(tag, words)
    assert encode_value(tag, value) == words


@settings(max_examples=150, deadline=None)
@given(
    data_type=st.sampled_from(["int16", "uint16", "int32", "uint32"]),
    word_order=st.sampled_from(ORDERS),
    scale=st.sampled_from([0.1, 0.01, 0.001, 0.5, 2.5, 10.0, 1.0]),
    offset=st.sampled_from([0.0, -40.0, 273.15, 0.5]),
    data=st.data(),
)
def test_scaled_integers_round_trip(
    data_type: DataType, word_order: Order, scale: float, offset: float, data: st.DataObject
) -> None:
    tag = ModbusTag(
        "t", 0, type=data_type, word_order=word_order, scale=scale, offset=offset, writable=True
    )
    words = raw_to_registers(data.draw(raw_values(data_type)), data_type, word_order)
    value = decode_value(tag, words)
    assert encode_value(tag, value) == words


@settings(max_examples=100, deadline=None)
@given(
    data_type=st.sampled_from(["float32", "float64"]),
    scale=st.sampled_from([0.1, 2.0, 1.0]),
    offset=st.sampled_from([0.0, -5.0]),
    value=st.floats(-1e6, 1e6, allow_nan=False),
)
def test_scaled_floats_round_trip_within_their_precision(
    data_type: DataType, scale: float, offset: float, value: float
) -> None:
    tag = ModbusTag("t", 0, type=data_type, scale=scale, offset=offset, writable=True)
    decoded = decode_value(tag, encode_value(tag, value))
    tolerance = 1e-6 if data_type == "float32" else 1e-12
    assert decoded == pytest.approx(value, rel=tolerance, abs=tolerance * (1 + abs(offset)))


@st.composite
def tag_sets(draw: st.DrawFn) -> list[ModbusTag]:
    """Tags of a few units and tables, clustered so that merges and splits both happen."""
    tags: list[ModbusTag] = []
    for index in range(draw(st.integers(1, 40))):
        table = cast(Table, draw(st.sampled_from(["holding", "input", "coil", "discrete_input"])))
        if table in BIT_TABLES:
            data_type: DataType = "bool"
        else:
            data_type = draw(st.sampled_from([*NUMBER_TYPES, "bits"]))
        top = 65536 - WIDTH[data_type]
        address = draw(st.one_of(st.integers(0, 300), st.integers(0, top)))
        bit = draw(st.integers(0, 15)) if data_type == "bits" else None
        unit = draw(st.integers(1, 3))
        tags.append(ModbusTag(f"t{index}", address, table, data_type, unit_id=unit, bit=bit))
    return tags


@settings(max_examples=120, deadline=None)
@given(
    tags=tag_sets(),
    max_gap=st.integers(0, 20),
    max_bit_gap=st.integers(0, 100),
    max_registers=st.integers(4, MAX_READ_REGISTERS),
    max_bits=st.integers(1, MAX_READ_BITS),
)
def test_blocks_cover_every_tag_once_within_the_limits(
    tags: list[ModbusTag], max_gap: int, max_bit_gap: int, max_registers: int, max_bits: int
) -> None:
    blocks = plan_blocks(
        tags,
        max_gap=max_gap,
        max_bit_gap=max_bit_gap,
        max_registers=max_registers,
        max_bits=max_bits,
    )
    covered = [tag.name for block in blocks for tag in block.tags]
    assert sorted(covered) == sorted(tag.name for tag in tags)
    for block in blocks:
        limit = max_bits if block.table in BIT_TABLES else max_registers
        assert 1 <= block.count <= limit
        assert {(t.unit_id, t.table) for t in block.tags} == {(block.unit_id, block.table)}
        assert block.address == min(t.address for t in block.tags)
        assert block.end == max(t.end for t in block.tags)
    for before, after in itertools.pairwise(blocks):
        if (before.unit_id, before.table) != (after.unit_id, after.table):
            continue
        gap = max_bit_gap if before.table in BIT_TABLES else max_gap
        limit = max_bits if before.table in BIT_TABLES else max_registers
        # greedy: the next block starts where joining it would break the gap or the limit
        first = after.tags[0]
        assert (
            first.address - before.end > gap or max(before.end, first.end) - before.address > limit
        )


@st.composite
def laid_out(draw: st.DrawFn) -> tuple[list[ModbusTag], dict[str, object]]:
    """Non-overlapping tags of one holding table with values, every type and order."""
    tags: list[ModbusTag] = []
    values: dict[str, object] = {}
    address = draw(st.integers(0, 50))
    for index in range(draw(st.integers(1, 30))):
        data_type = draw(st.sampled_from([*NUMBER_TYPES, "bits"]))
        name = f"t{index}"
        if data_type == "bits":
            tag = ModbusTag(name, address, type="bits", bit=draw(st.integers(0, 15)))
            values[name] = draw(st.booleans())
        else:
            tag = ModbusTag(
                name,
                address,
                type=data_type,
                word_order=draw(st.sampled_from(ORDERS)),
                byte_order=draw(st.sampled_from(ORDERS)),
            )
            values[name] = draw(raw_values(data_type))
        tags.append(tag)
        address = tag.end + draw(st.integers(0, 12))
    return tags, values


@settings(max_examples=80, deadline=None)
@given(layout=laid_out(), max_gap=st.integers(0, 12))
def test_a_register_image_decodes_back_through_the_planned_blocks(
    layout: tuple[list[ModbusTag], dict[str, object]], max_gap: int
) -> None:
    tags, values = layout
    image = [0] * (tags[-1].end + 1)
    for tag in tags:
        if tag.type == "bits":
            image[tag.address] = int(cast(bool, values[tag.name])) << cast(int, tag.bit)
        else:
            image[tag.address : tag.end] = encode_value(tag, values[tag.name])
    decoded: dict[str, object] = {}
    for block in plan_blocks(tags, max_gap=max_gap):
        answer = image[block.address : block.end]
        decoded.update(decode_block(block, answer))
        assert block_decoder(block)(answer) == decode_block(block, answer)
    for tag in tags:
        if tag.type == "float32":
            # a float32 reads back as its shortest decimal: the same float32, not the same float64
            same = struct.pack(">f", cast(float, decoded[tag.name]))
            assert same == struct.pack(">f", cast(float, values[tag.name]))
        else:
            assert decoded[tag.name] == values[tag.name]


def test_the_protocol_limits_are_the_defaults() -> None:
    tags = [ModbusTag(f"r{i}", i) for i in range(300)]
    assert [b.count for b in plan_blocks(tags)] == [125, 125, 50]
    bits = [ModbusTag(f"c{i}", i, table="coil", type="bool") for i in range(4100)]
    assert [b.count for b in plan_blocks(bits)] == [MAX_READ_BITS, MAX_READ_BITS, 100]
    assert tag_from_dict({"tag": "x", "address": 1}).type == "uint16"
    with pytest.raises(ValueError, match=r"reads are 1\.\.125"):
        plan_blocks(tags, max_registers=126)


@settings(max_examples=300, deadline=None)
@given(
    data_type=st.sampled_from(["int16", "uint16"]),
    byte_order=st.sampled_from(ORDERS),
    scale=st.sampled_from([1.0, 0.1, 0.01, 0.001, 2.5]),
    offset=st.sampled_from([0.0, -40.0, 273.15]),
    word=st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 1, 0x7FFF, 0x8000, 0xFFFF])),
)
def test_the_word_fast_path_decodes_as_the_general_one(
    data_type: DataType, byte_order: Order, scale: float, offset: float, word: int
) -> None:
    from clusterbrain.connectors.modbus.registers import decode_word

    tag = ModbusTag("t", 0, type=data_type, byte_order=byte_order, scale=scale, offset=offset)
    fast, general = decode_word(tag, word), decode_value(tag, [word])
    assert fast == general and type(fast) is type(general)
    [block] = plan_blocks([tag])
    assert decode_block(block, [word]) == {"t": general}
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        decode_word(tag, 0x10000)


@settings(max_examples=100, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 3), min_size=1, max_size=40),
    words=st.lists(st.integers(0, 0xFFFF), min_size=200, max_size=200),
)
def test_plain_registers_decode_by_picking_as_the_general_path_does(
    gaps: list[int], words: list[int]
) -> None:
    tags, address = [], 0
    for index, gap in enumerate(gaps):
        address += gap
        tags.append(ModbusTag(f"r{index}", address))
        address += 1
    for block in plan_blocks(tags, max_gap=3):
        answer = words[block.address : block.end]
        assert block_decoder(block)(answer) == decode_block(block, answer)
        with pytest.raises(ValueError, match="needs"):
            block_decoder(block)(answer[:-1])
