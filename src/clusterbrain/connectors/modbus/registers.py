"""Modbus register maps as plain values: validation, decoding, encoding and block planning.

Nothing here does I/O. The client (``client.py``) reads the blocks this module plans and hands
the answers back for decoding, so every rule about registers lives, and is tested, in one place.

Conventions, as most device manuals use them:

- Addresses are 0-based protocol addresses (the "40001" of a manual is holding address 0).
- A register is a 16-bit word, sent most significant byte first (Modbus is big-endian on the wire).
  ``byte_order: little`` swaps the two bytes inside every word; ``word_order: little`` puts the
  least significant word first (the "CDAB" of many meters). Both only matter to multi-byte types.
- ``value = raw * scale + offset``; writes apply the inverse and round integer types.
- ``bits`` reads one bit (0 = least significant) of a holding or input register as a bool.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from itertools import groupby
from typing import Literal, NoReturn, cast, get_args

from clusterbrain.devices.schemas import TAG_NAME_PATTERN
from clusterbrain.platform.errors import InvalidInput

Table = Literal["holding", "input", "coil", "discrete_input"]
DataType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool", "bits"
]
Order = Literal["big", "little"]
Decoded = float | int | bool | None
"""A decoded value; None when the device sent no number (NaN or infinity in a float register)."""

TABLES: tuple[Table, ...] = get_args(Table)
DATA_TYPES: tuple[DataType, ...] = get_args(DataType)
ORDERS: tuple[Order, ...] = get_args(Order)
BIT_TABLES: frozenset[Table] = frozenset({"coil", "discrete_input"})
WRITABLE_TABLES: frozenset[Table] = frozenset({"holding", "coil"})

MAX_ADDRESS = 65535
MAX_READ_REGISTERS = 125
"""Registers one read may ask for (function codes 3 and 4), set by the size of a frame."""
MAX_READ_BITS = 2000
"""Coils or discrete inputs one read may ask for (function codes 1 and 2)."""
MAX_WRITE_REGISTERS = 123

WIDTH: dict[DataType, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
    "bool": 1,
    "bits": 1,
}
"""Registers (or bits, for bool) one value occupies."""

_STRUCT: dict[DataType, str] = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}
_INT_RANGE: dict[DataType, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_TAG_NAME = re.compile(TAG_NAME_PATTERN)

MODBUS_EXCEPTIONS: dict[int, str] = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SERVER_DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER_DEVICE_BUSY",
    7: "NEGATIVE_ACKNOWLEDGE",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}
"""Exception codes of the Modbus application protocol (V1.1b3, section 7), by their names there."""


class RegisterMapError(InvalidInput, ValueError):
    """A register map that cannot work; the message names the tag (or device) and the rule."""


def exception_name(code: int) -> str:
    """The Modbus specification's name of an exception code.

    >>> exception_name(2), exception_name(99)
    ('ILLEGAL_DATA_ADDRESS', 'EXCEPTION_99')
    """
    return MODBUS_EXCEPTIONS.get(code, f"EXCEPTION_{code}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class ModbusTag:
    """One value in one table of one unit; checked on construction.

    >>> ModbusTag("energy", 16, table="input", type="uint32", scale=0.1).width
    2
    """

    name: str
    address: int
    table: Table = "holding"
    type: DataType = "uint16"
    unit_id: int = 1
    bit: int | None = None
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0
    writable: bool = False
    min_value: float | None = None
    max_value: float | None = None

    def __post_init__(self) -> None:
        problem = _tag_problem(self)
        if problem:
            raise RegisterMapError(f"tag {self.name!r}: {problem}", field=self.name)

    @property
    def width(self) -> int:
        """Registers (or bits in a bit table) the value occupies."""
        return WIDTH[self.type]

    @property
    def end(self) -> int:
        """The first address after the value."""
        return self.address + self.width

    @property
    def is_integer(self) -> bool:
        return self.type in _INT_RANGE


def _tag_problem(tag: ModbusTag) -> str:
    """What is wrong with a tag, or '' when nothing is."""
    if not isinstance(tag.name, str) or not _TAG_NAME.match(tag.name):
        return f"a tag name must match {TAG_NAME_PATTERN}"
    for check in (_kind_problem, _address_problem, _number_problem, _write_problem):
        if problem := check(tag):
            return problem
    return ""


def _kind_problem(tag: ModbusTag) -> str:
    if tag.table not in TABLES:
        return f"table must be one of {', '.join(TABLES)}, not {tag.table!r}"
    if tag.type not in DATA_TYPES:
        return f"type must be one of {', '.join(DATA_TYPES)}, not {tag.type!r}"
    if tag.table in BIT_TABLES and tag.type != "bool":
        return f"a {tag.table} holds single bits: its type must be bool, not {tag.type}"
    if tag.type == "bool" and tag.table not in BIT_TABLES:
        return "type bool is for coils and discrete inputs; a bit of a register is type bits"
    if tag.type == "bits":
        if not _is_int(tag.bit) or not 0 <= cast(int, tag.bit) <= 15:
            return f"type bits needs a bit index 0..15, not {tag.bit!r}"
    elif tag.bit is not None:
        return f"bit is only for type bits, not {tag.type}"
    if tag.word_order not in ORDERS or tag.byte_order not in ORDERS:
        return "word_order and byte_order must be big or little"
    return ""


def _address_problem(tag: ModbusTag) -> str:
    if not _is_int(tag.unit_id) or not 0 <= tag.unit_id <= 255:
        return f"unit id must be 0..255, not {tag.unit_id!r}"
    if not _is_int(tag.address) or not 0 <= tag.address <= MAX_ADDRESS:
        return f"address must be an integer 0..{MAX_ADDRESS}, not {tag.address!r}"
    if tag.end - 1 > MAX_ADDRESS:
        left = MAX_ADDRESS - tag.address + 1
        return f"{tag.type} needs {tag.width} registers, address {tag.address} leaves {left}"
    return ""


def _number_problem(tag: ModbusTag) -> str:
    for key in ("scale", "offset", "min_value", "max_value"):
        number = getattr(tag, key)
        if number is not None and (not _is_number(number) or not math.isfinite(number)):
            return f"{key} must be a finite number, not {number!r}"
    if tag.scale == 0:
        return "scale must not be 0 (writes divide by it)"
    logical = tag.type in ("bool", "bits")
    if logical and (
        tag.scale != 1 or tag.offset != 0 or tag.min_value is not None or tag.max_value is not None
    ):
        return f"a {tag.type} value takes no scale, offset, min_value or max_value"
    if tag.min_value is not None and tag.max_value is not None and tag.min_value > tag.max_value:
        return f"min_value {tag.min_value} is above max_value {tag.max_value}"
    return ""


def _write_problem(tag: ModbusTag) -> str:
    if not isinstance(tag.writable, bool):
        return f"writable must be true or false, not {tag.writable!r}"
    if tag.writable and tag.table not in WRITABLE_TABLES:
        return (
            f"a {tag.table} is read-only in Modbus: only holding registers and coils are writable"
        )
    return ""


# ---------------------------------------------------------------------------------------------
# Registers <-> raw numbers


def _words(data: bytes, word_order: Order, byte_order: Order) -> list[int]:
    pairs = [data[i : i + 2] for i in range(0, len(data), 2)]
    if byte_order == "little":
        pairs = [pair[::-1] for pair in pairs]
    if word_order == "little":
        pairs.reverse()
    return [int.from_bytes(pair, "big") for pair in pairs]


def _bytes(words: Sequence[int], word_order: Order, byte_order: Order) -> bytes:
    pairs = [int(word).to_bytes(2, "big") for word in words]
    if word_order == "little":
        pairs.reverse()
    if byte_order == "little":
        pairs = [pair[::-1] for pair in pairs]
    return b"".join(pairs)


def registers_to_raw(
    words: Sequence[int],
    data_type: DataType,
    word_order: Order = "big",
    byte_order: Order = "big",
) -> int | float:
    """The number that ``words`` hold, before scale and offset.

    >>> registers_to_raw([0x4049, 0x0FDB], "float32")
    3.1415927410125732
    >>> registers_to_raw([0x0FDB, 0x4049], "float32", word_order="little")
    3.1415927410125732
    >>> registers_to_raw([0xFFFF], "int16"), registers_to_raw([0x0100], "uint16", byte_order="little")
    (-1, 1)
    """
    width = WIDTH[data_type]
    if len(words) != width or data_type not in _STRUCT:
        raise ValueError(f"{data_type} is {width} registers of a number, got {len(words)}")
    if any(not 0 <= word <= 0xFFFF for word in words):
        raise ValueError("a register holds 0..65535")
    value: int | float = struct.unpack(
        ">" + _STRUCT[data_type], _bytes(words, word_order, byte_order)
    )[0]
    return value


def raw_to_registers(
    raw: int | float,
    data_type: DataType,
    word_order: Order = "big",
    byte_order: Order = "big",
) -> list[int]:
    """The registers that hold ``raw``: the inverse of ``registers_to_raw``.

    >>> [hex(w) for w in raw_to_registers(123456, "uint32", word_order="little")]
    ['0xe240', '0x1']
    """
    if data_type not in _STRUCT:
        raise ValueError(f"{data_type} is not a number type")
    try:
        data = struct.pack(">" + _STRUCT[data_type], raw)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{raw} does not fit {data_type}") from exc
    return _words(data, word_order, byte_order)


def _shortest_float32(value: float) -> float:
    """The shortest decimal that is the same float32, so 229.87 reads as 229.87, not 229.8699951."""
    packed = struct.pack(">f", value)
    for digits in (6, 7, 8):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(">f", candidate) == packed:
            return candidate
    return value


@lru_cache(maxsize=256)
def _decimals(scale: float, offset: float) -> int:
    """Decimals that ``int * scale + offset`` can have: rounding to them removes float noise only.

    >>> _decimals(0.01, 0.0), _decimals(1.0, -40.5), _decimals(10.0, 0.0)
    (2, 1, 0)
    """
    exponents = [Decimal(repr(float(x))).normalize().as_tuple().exponent for x in (scale, offset)]
    return max([0] + [-int(e) for e in exponents if isinstance(e, int)])


def decode_word(tag: ModbusTag, word: int) -> Decoded:
    """``decode_value`` for a one-register integer (int16, uint16), without packing bytes.

    The hot path of a poll: most registers of meters and PLCs are scaled 16-bit integers, and
    going through ``struct`` for each costs several times the rest of the gateway's work.

    >>> decode_word(ModbusTag("t", 1, type="int16", scale=0.1), 0xFF9C)
    -10.0
    >>> decode_word(ModbusTag("n", 1, byte_order="little"), 0x0100)
    1
    """
    if not 0 <= word <= 0xFFFF:
        raise ValueError("a register holds 0..65535")
    if tag.byte_order == "little":
        word = ((word & 0xFF) << 8) | (word >> 8)
    raw = word - 0x10000 if tag.type == "int16" and word & 0x8000 else word
    if tag.scale == 1 and tag.offset == 0:
        return raw
    return round(raw * tag.scale + tag.offset, _decimals(tag.scale, tag.offset))


WORD_INTEGERS: frozenset[DataType] = frozenset({"int16", "uint16"})
"""The types ``decode_word`` decodes."""


def decode_value(tag: ModbusTag, words: Sequence[int]) -> Decoded:
    """The value of a register tag from its own registers: ``raw * scale + offset``.

    An integer tag without scale or offset stays an int; a scaled one is a float rounded to the
    decimals the scale has, so 2345 × 0.01 is 23.45 and not 23.450000000000003.

    >>> decode_value(ModbusTag("p", 0, scale=0.01), [2345])
    23.45
    >>> decode_value(ModbusTag("alarm", 3, type="bits", bit=2), [0b0100])
    True
    """
    if tag.type == "bits":
        return bool((words[0] >> cast(int, tag.bit)) & 1)
    raw = registers_to_raw(words, tag.type, tag.word_order, tag.byte_order)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return None
        if tag.type == "float32":
            raw = _shortest_float32(raw)
        if tag.scale == 1 and tag.offset == 0:
            return raw
        return raw * tag.scale + tag.offset
    if tag.scale == 1 and tag.offset == 0:
        return raw
    return round(raw * tag.scale + tag.offset, _decimals(tag.scale, tag.offset))


def _check_limits(tag: ModbusTag, value: float | int) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if tag.min_value is not None and value < tag.min_value:
        raise ValueError(f"{value} is below the minimum {tag.min_value} of {tag.name}")
    if tag.max_value is not None and value > tag.max_value:
        raise ValueError(f"{value} is above the maximum {tag.max_value} of {tag.name}")


def to_raw(tag: ModbusTag, value: object) -> int | float:
    """The raw number to write for an engineering value: ``(value - offset) / scale``.

    Checks, in this order, that ``value`` is a number, within the tag's min_value..max_value, and that the raw
    number fits the register type; integer types round to the nearest integer.

    >>> to_raw(ModbusTag("sp", 20, scale=0.01, min_value=5, max_value=10), 7.25)
    725
    >>> to_raw(ModbusTag("sp", 20, scale=0.01, min_value=5, max_value=10), 11)
    Traceback (most recent call last):
    ...
    ValueError: 11 is above the maximum 10 of sp
    """
    if not _is_number(value):
        raise ValueError(f"{tag.name} takes a number, not {value!r}")
    _check_limits(tag, cast(float, value))
    raw = (cast(float, value) - tag.offset) / tag.scale
    if tag.is_integer:
        # An unscaled int stays exact: 64-bit counters do not survive a trip through a float.
        exact = _is_int(value) and tag.scale == 1 and tag.offset == 0
        rounded = cast(int, value) if exact else round(raw)
        lo, hi = _INT_RANGE[tag.type]
        if not lo <= rounded <= hi:
            raise ValueError(f"{value} is raw {rounded}, outside the {tag.type} range {lo}..{hi}")
        return rounded
    if tag.type == "float32":
        try:
            # struct knows the float32 rounding: 3.4028235e38 is the largest float32, not beyond it
            struct.pack(">f", raw)
        except OverflowError:
            raise ValueError(f"{value} is raw {raw:g}, beyond the float32 range") from None
    return raw


def encode_value(tag: ModbusTag, value: object) -> list[int]:
    """The registers to write for a number tag.

    >>> encode_value(ModbusTag("t", 1, type="int16", scale=0.1), -12.5)
    [65411]
    """
    if tag.type in ("bool", "bits"):
        raise ValueError(f"{tag.name} is a single bit, not registers")
    return raw_to_registers(to_raw(tag, value), tag.type, tag.word_order, tag.byte_order)


def to_bool(tag: ModbusTag, value: object) -> bool:
    """A command value for a bit: true/false, or the numbers 1 and 0."""
    if isinstance(value, bool):
        return value
    if _is_number(value) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{tag.name} takes true or false, not {value!r}")


@dataclass(frozen=True, slots=True)
class RegisterWrite:
    """One write request ready to send: the function code and its payload."""

    unit_id: int
    address: int
    function_code: int
    """5 write single coil, 6 write single register, 16 write multiple registers, 22 mask write."""
    registers: tuple[int, ...] = ()
    coil: bool = False
    and_mask: int = 0xFFFF
    or_mask: int = 0x0000


def encode_write(tag: ModbusTag, value: object) -> RegisterWrite:
    """The request that writes ``value`` to ``tag``; ValueError with the reason when it may not.

    A bit of a register is written with mask write (function 22), which changes that bit alone
    in the device, so a status bit the device sets meanwhile is not overwritten.

    >>> encode_write(ModbusTag("sp", 20, scale=0.01, writable=True), 7.5)
    RegisterWrite(unit_id=1, address=20, function_code=6, registers=(750,), coil=False, and_mask=65535, or_mask=0)
    >>> w = encode_write(ModbusTag("lamp", 3, type="bits", bit=4, writable=True), True)
    >>> w.function_code, hex(w.and_mask), hex(w.or_mask)
    (22, '0xffef', '0x10')
    """
    if not tag.writable:
        raise ValueError(f"{tag.name} is not writable")
    if tag.table == "coil":
        return RegisterWrite(tag.unit_id, tag.address, 5, coil=to_bool(tag, value))
    if tag.type == "bits":
        mask = 1 << cast(int, tag.bit)
        on = to_bool(tag, value)
        return RegisterWrite(
            tag.unit_id, tag.address, 22, and_mask=0xFFFF ^ mask, or_mask=mask if on else 0
        )
    words = tuple(encode_value(tag, value))
    return RegisterWrite(tag.unit_id, tag.address, 6 if len(words) == 1 else 16, registers=words)


# ---------------------------------------------------------------------------------------------
# Blocks


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers (or bits) from ``address``, covering ``tags``."""

    unit_id: int
    table: Table
    address: int
    count: int
    tags: tuple[ModbusTag, ...]

    @property
    def end(self) -> int:
        return self.address + self.count

    def __str__(self) -> str:
        return f"unit {self.unit_id} {self.table} {self.address}..{self.end - 1}"


def plan_blocks(
    tags: Iterable[ModbusTag],
    *,
    max_gap: int = 4,
    max_bit_gap: int = 32,
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> list[Block]:
    """Merge tags of one unit and table into as few reads as the limits allow.

    Tags sorted by address join the current block while the unread gap before them is at most
    ``max_gap`` registers (``max_bit_gap`` bits in coil tables) and the block stays within
    ``max_registers`` (``max_bits``). Reading a few unused registers costs far less than a
    request round trip; set the gap to 0 for devices that refuse reads of unmapped addresses.

    >>> tags = [ModbusTag("a", 0, type="float32"), ModbusTag("b", 2), ModbusTag("c", 10)]
    >>> [(b.address, b.count, [t.name for t in b.tags]) for b in plan_blocks(tags)]
    [(0, 3, ['a', 'b']), (10, 1, ['c'])]
    >>> [(b.address, b.count) for b in plan_blocks(tags, max_gap=7)]
    [(0, 11)]
    """
    if min(max_gap, max_bit_gap) < 0:
        raise ValueError("a gap cannot be negative")
    if not 1 <= max_registers <= MAX_READ_REGISTERS or not 1 <= max_bits <= MAX_READ_BITS:
        raise ValueError(f"reads are 1..{MAX_READ_REGISTERS} registers or 1..{MAX_READ_BITS} bits")

    def group_key(tag: ModbusTag) -> tuple[int, int]:
        return tag.unit_id, TABLES.index(tag.table)

    ordered = sorted(tags, key=lambda t: (*group_key(t), t.address, t.end))
    blocks: list[Block] = []
    for _, group in groupby(ordered, key=group_key):
        members = list(group)
        bits = members[0].table in BIT_TABLES
        gap, limit = (max_bit_gap, max_bits) if bits else (max_gap, max_registers)
        blocks.extend(_merge(members, gap, limit))
    return blocks


def _merge(tags: list[ModbusTag], gap: int, limit: int) -> list[Block]:
    """Greedy merge of one unit and table's tags, sorted by address."""
    blocks: list[Block] = []
    current: list[ModbusTag] = []
    start = end = 0
    for tag in tags:
        if tag.width > limit:
            raise ValueError(f"tag {tag.name!r}: {tag.width} registers exceed a read of {limit}")
        if current and tag.address - end <= gap and max(end, tag.end) - start <= limit:
            current.append(tag)
            end = max(end, tag.end)
            continue
        if current:
            blocks.append(_block(current, start, end))
        current, start, end = [tag], tag.address, tag.end
    if current:
        blocks.append(_block(current, start, end))
    return blocks


def _block(tags: list[ModbusTag], start: int, end: int) -> Block:
    return Block(tags[0].unit_id, tags[0].table, start, end - start, tuple(tags))


def decode_block(block: Block, data: Sequence[int] | Sequence[bool]) -> dict[str, Decoded]:
    """The value of every tag of ``block`` from the registers (or bits) read for it.

    >>> block = plan_blocks([ModbusTag("v", 0, type="float32"), ModbusTag("f", 2, scale=0.01)])[0]
    >>> decode_block(block, [0x4366, 0x0000, 5002])
    {'v': 230.0, 'f': 50.02}
    """
    if len(data) < block.count:
        unit = "bits" if block.table in BIT_TABLES else "registers"
        raise ValueError(f"the answer has {len(data)} {unit}, {block} needs {block.count}")
    values: dict[str, Decoded] = {}
    bits = block.table in BIT_TABLES
    for tag in block.tags:
        start = tag.address - block.address
        if bits:
            values[tag.name] = bool(data[start])
        elif tag.type in WORD_INTEGERS:
            values[tag.name] = decode_word(tag, int(data[start]))
        else:
            values[tag.name] = decode_value(tag, [int(w) for w in data[start : start + tag.width]])
    return values


def is_plain_word(tag: ModbusTag) -> bool:
    """A register whose value is the register itself: uint16, big-endian, no scale or offset."""
    return (
        tag.type == "uint16"
        and tag.table not in BIT_TABLES
        and tag.byte_order == "big"
        and tag.scale == 1
        and tag.offset == 0
    )


def block_decoder(block: Block) -> Callable[[Sequence[int] | Sequence[bool]], dict[str, Decoded]]:
    """``decode_block`` for one block, with what can be worked out beforehand worked out.

    A block of plain registers (``is_plain_word``, the common case of counters and states) is
    decoded by picking the registers, without a Python step per value; any other block goes
    through ``decode_block``. Both give the same values.

    >>> block = plan_blocks([ModbusTag("a", 0), ModbusTag("b", 2)])[0]
    >>> block_decoder(block)([7, 0, 9])
    {'a': 7, 'b': 9}
    """
    if not all(is_plain_word(tag) for tag in block.tags):
        return lambda data: decode_block(block, data)
    names = tuple(tag.name for tag in block.tags)
    positions = [tag.address - block.address for tag in block.tags]
    count = block.count
    contiguous = positions == list(range(len(positions)))

    def decode(data: Sequence[int] | Sequence[bool]) -> dict[str, Decoded]:
        if len(data) < count:
            return decode_block(block, data)  # raises with the reason
        if contiguous:
            return dict(zip(names, data, strict=False))
        return dict(zip(names, map(data.__getitem__, positions), strict=True))

    return decode


# ---------------------------------------------------------------------------------------------
# Devices and connections


@dataclass(frozen=True, slots=True)
class ModbusDevice:
    """One unit id behind a connection, polled at its own interval."""

    name: str
    unit_id: int
    tags: tuple[ModbusTag, ...]
    poll_interval_s: float = 1.0
    max_gap: int = 4
    max_bit_gap: int = 32
    max_registers: int = MAX_READ_REGISTERS
    max_bits: int = MAX_READ_BITS

    def __post_init__(self) -> None:
        problem = _device_problem(self)
        if problem:
            raise RegisterMapError(f"device {self.name!r}: {problem}", field=self.name)

    def blocks(self) -> list[Block]:
        """The reads of one poll."""
        return plan_blocks(
            self.tags,
            max_gap=self.max_gap,
            max_bit_gap=self.max_bit_gap,
            max_registers=self.max_registers,
            max_bits=self.max_bits,
        )


def _device_problem(device: ModbusDevice) -> str:
    if not isinstance(device.name, str) or not device.name:
        return "a device needs a name"
    if not _is_int(device.unit_id) or not 0 <= device.unit_id <= 255:
        return f"unit_id must be 0..255, not {device.unit_id!r}"
    interval = device.poll_interval_s
    if not _is_number(interval) or not 0.001 <= interval <= 86400:
        return f"the poll interval must be 1 ms to 24 h, not {interval!r} s"
    if not device.tags:
        return "a device needs at least one tag"
    for key, top in (("max_registers", MAX_READ_REGISTERS), ("max_bits", MAX_READ_BITS)):
        limit = getattr(device, key)
        if not _is_int(limit) or not 1 <= limit <= top:
            return f"{key} must be 1..{top}, not {limit!r}"
    for key in ("max_gap", "max_bit_gap"):
        gap = getattr(device, key)
        if not _is_int(gap) or gap < 0:
            return f"{key} must be an integer >= 0, not {gap!r}"
    return _tags_problem(device)


def _tags_problem(device: ModbusDevice) -> str:
    seen: set[str] = set()
    for tag in device.tags:
        if tag.name in seen:
            return f"tag {tag.name!r} is defined twice"
        seen.add(tag.name)
        if tag.unit_id != device.unit_id:
            return f"tag {tag.name!r} has unit id {tag.unit_id}, its device {device.unit_id}"
        limit = device.max_bits if tag.table in BIT_TABLES else device.max_registers
        if tag.width > limit:
            return f"tag {tag.name!r} needs {tag.width} registers, more than max_registers {limit}"
    return ""


@dataclass(frozen=True, slots=True)
class ModbusConnection:
    """One Modbus TCP connection (a device, or a gateway to several units) and what to read."""

    host: str
    devices: tuple[ModbusDevice, ...]
    port: int = 502
    name: str = ""
    request_timeout_s: float = 1.0
    """How long to wait for each answer (and for the connection to open)."""
    retries: int = 1
    """How often a request that got no (or a malformed) answer is sent again, on a new connection."""
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        problem = _connection_problem(self)
        if problem:
            raise RegisterMapError(f"modbus connection {self.host}:{self.port}: {problem}")

    @property
    def label(self) -> str:
        """The name, or host:port when the configuration gives none."""
        return self.name or f"modbus://{self.host}:{self.port}"

    def find(self, tag: str) -> tuple[ModbusDevice, ModbusTag]:
        """The device and tag called ``tag``; KeyError when there is none."""
        for device in self.devices:
            for spec in device.tags:
                if spec.name == tag:
                    return device, spec
        raise KeyError(tag)


def _connection_problem(conn: ModbusConnection) -> str:
    if not isinstance(conn.host, str) or not conn.host:
        return "host is empty"
    if not _is_int(conn.port) or not 1 <= conn.port <= 65535:
        return f"port must be 1..65535, not {conn.port!r}"
    if not _is_number(conn.request_timeout_s) or not 0 < conn.request_timeout_s <= 600:
        return f"request_timeout_s must be above 0 and at most 600, not {conn.request_timeout_s!r}"
    if not _is_int(conn.retries) or not 0 <= conn.retries <= 10:
        return f"retries must be 0..10, not {conn.retries!r}"
    lo, hi = conn.reconnect_initial_s, conn.reconnect_max_s
    if not (_is_number(lo) and _is_number(hi) and 0 < lo <= hi):
        return "backoff needs 0 < reconnect_initial_s <= reconnect_max_s"
    if not conn.devices:
        return "no devices"
    names: set[str] = set()
    tags: dict[str, str] = {}
    for device in conn.devices:
        if device.name in names:
            return f"device {device.name!r} is defined twice"
        names.add(device.name)
        for tag in device.tags:
            if tag.name in tags:
                return f"tag {tag.name!r} is in devices {tags[tag.name]!r} and {device.name!r}"
            tags[tag.name] = device.name
    return ""


# ---------------------------------------------------------------------------------------------
# From configuration data (a parsed YAML or JSON document)

_TAG_KEYS = frozenset(
    {"tag", "table", "address", "type", "bit", "word_order", "byte_order", "scale", "offset"}
    | {"writable", "min_value", "max_value"}
)
_DEVICE_KEYS = frozenset(
    {"name", "unit_id", "poll_interval_ms", "word_order", "byte_order", "max_gap", "max_bit_gap"}
    | {"max_registers", "max_bits", "tags"}
)
_CONNECTION_KEYS = frozenset(
    {
        "name",
        "host",
        "port",
        "request_timeout_s",
        "retries",
        "reconnect_initial_s",
        "reconnect_max_s",
    }
    | {"devices"}
)


class _Fields:
    """Typed reads of one mapping of a configuration, with errors that say where."""

    def __init__(self, raw: object, where: str, known: frozenset[str]) -> None:
        if not isinstance(raw, Mapping):
            raise RegisterMapError(f"{where}: expected a mapping, got {type(raw).__name__}")
        self.raw, self.where = raw, where
        unknown = sorted(str(key) for key in raw if key not in known)
        if unknown:
            keys = ", ".join(sorted(known))
            self.fail(f"unknown key {unknown[0]!r} (known keys: {keys})")

    def fail(self, problem: str) -> NoReturn:
        raise RegisterMapError(f"{self.where}: {problem}")

    def get(self, key: str, check: Callable[[object], bool], what: str, default: object) -> object:
        if key not in self.raw:
            return default
        value = self.raw[key]
        if not check(value):
            self.fail(f"{key} must be {what}, not {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        return float(cast(float, self.get(key, _is_number, "a number", default)))

    def integer(self, key: str, default: int, what: str = "an integer") -> int:
        return cast(int, self.get(key, _is_int, what, default))

    def order(self, key: str, default: Order) -> Order:
        return cast(Order, self.get(key, _choice(ORDERS), "big or little", default))

    def required(self, key: str) -> object:
        if key not in self.raw:
            self.fail(f"{key} is missing")
        return self.raw[key]


def _choice(options: tuple[str, ...]) -> Callable[[object], bool]:
    return lambda value: value in options


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _optional_number(value: object) -> bool:
    return value is None or _is_number(value)


def tag_from_dict(
    raw: object, *, unit_id: int = 1, word_order: Order = "big", byte_order: Order = "big"
) -> ModbusTag:
    """A tag from its configuration; the device supplies unit id and default orders.

    >>> tag_from_dict({"tag": "running", "table": "coil", "address": 0}).type
    'bool'
    """
    name = raw.get("tag") if isinstance(raw, Mapping) else None
    fields = _Fields(raw, f"tag {name!r}", _TAG_KEYS)
    tables = f"one of {', '.join(TABLES)}"
    table = cast(Table, fields.get("table", _choice(TABLES), tables, "holding"))
    types = f"one of {', '.join(DATA_TYPES)}"
    default_type = "bool" if table in BIT_TABLES else "uint16"
    return ModbusTag(
        name=cast(str, fields.required("tag")),
        address=cast(int, fields.required("address")),
        table=table,
        type=cast(DataType, fields.get("type", _choice(DATA_TYPES), types, default_type)),
        unit_id=unit_id,
        bit=cast("int | None", fields.get("bit", _is_int, "an integer 0..15", None)),
        word_order=fields.order("word_order", word_order),
        byte_order=fields.order("byte_order", byte_order),
        scale=fields.number("scale", 1.0),
        offset=fields.number("offset", 0.0),
        writable=cast(bool, fields.get("writable", _is_bool, "true or false", False)),
        min_value=cast("float | None", fields.get("min_value", _optional_number, "a number", None)),
        max_value=cast("float | None", fields.get("max_value", _optional_number, "a number", None)),
    )


def device_from_dict(raw: object) -> ModbusDevice:
    """A device and its tags from configuration data (see docs/modbus.md for the shape)."""
    name = raw.get("name") if isinstance(raw, Mapping) else None
    fields = _Fields(raw, f"device {name!r}", _DEVICE_KEYS)
    unit_id = fields.integer("unit_id", 1, "an integer 0..255")
    if not 0 <= unit_id <= 255:
        fields.fail(f"unit_id must be 0..255, not {unit_id}")
    word_order = fields.order("word_order", "big")
    byte_order = fields.order("byte_order", "big")
    tags = fields.required("tags")
    if not isinstance(tags, list | tuple):
        fields.fail("tags must be a list")
    return ModbusDevice(
        name=cast(str, fields.required("name")),
        unit_id=unit_id,
        tags=tuple(
            tag_from_dict(tag, unit_id=unit_id, word_order=word_order, byte_order=byte_order)
            for tag in cast(Sequence[object], tags)
        ),
        poll_interval_s=fields.number("poll_interval_ms", 1000.0) / 1000.0,
        max_gap=fields.integer("max_gap", 4),
        max_bit_gap=fields.integer("max_bit_gap", 32),
        max_registers=fields.integer("max_registers", MAX_READ_REGISTERS),
        max_bits=fields.integer("max_bits", MAX_READ_BITS),
    )


def connection_from_dict(raw: object) -> ModbusConnection:
    """A connection, its devices and their tags from configuration data.

    >>> conn = connection_from_dict({"host": "10.0.0.5", "devices": [
    ...     {"name": "meter", "unit_id": 3, "tags": [
    ...         {"tag": "voltage_l1", "table": "input", "address": 0, "type": "float32"}]}]})
    >>> conn.port, conn.devices[0].tags[0].unit_id, conn.label
    (502, 3, 'modbus://10.0.0.5:502')
    """
    fields = _Fields(raw, "modbus connection", _CONNECTION_KEYS)
    devices = fields.required("devices")
    if not isinstance(devices, list | tuple):
        fields.fail("devices must be a list")
    return ModbusConnection(
        host=cast(str, fields.required("host")),
        devices=tuple(device_from_dict(d) for d in cast(Sequence[object], devices)),
        port=fields.integer("port", 502, "an integer 1..65535"),
        name=cast(str, fields.get("name", lambda v: isinstance(v, str), "text", "")),
        request_timeout_s=fields.number("request_timeout_s", 1.0),
        retries=fields.integer("retries", 1, "an integer 0..10"),
        reconnect_initial_s=fields.number("reconnect_initial_s", 0.5),
        reconnect_max_s=fields.number("reconnect_max_s", 30.0),
    )
