"""Checks and conversions of a command value before it is written to an OPC UA variable.

A server rejects a write whose variant type differs from the variable's data type (a Double sent
to an Int32 setpoint answers BadTypeMismatch), while commands arrive as JSON numbers, so the
gateway converts each value to the variable's built-in type first and refuses, with a reason,
what does not convert exactly.
"""

from __future__ import annotations

import math

from clusterbrain.connectors.source import Value

INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "SByte": (-(2**7), 2**7 - 1),
    "Byte": (0, 2**8 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "UInt16": (0, 2**16 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "UInt32": (0, 2**32 - 1),
    "Int64": (-(2**63), 2**63 - 1),
    "UInt64": (0, 2**64 - 1),
}
FLOAT_TYPES = frozenset({"Float", "Double"})
WRITABLE_TYPES = frozenset({"Boolean", "String", *INTEGER_RANGES, *FLOAT_TYPES})
"""Built-in types (OPC UA Part 6, 5.1.2) a command can be written to."""


class CommandRejected(ValueError):
    """The value cannot be written; the message says why."""


def check_range(value: Value, min_value: float | None, max_value: float | None) -> str | None:
    """Why ``value`` is outside the configured range, or ``None`` when it may be sent.

    >>> check_range(215.0, 0, 400) is None
    True
    >>> check_range(450, 0, 400)
    'value 450 is above the maximum 400'
    >>> check_range("hot", 0, 400)
    "value 'hot' is not a number, but the tag has a range"
    >>> check_range("any", None, None) is None
    True
    """
    if min_value is None and max_value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"value {value!r} is not a number, but the tag has a range"
    if math.isnan(value):
        return "value NaN is not a number"
    if min_value is not None and value < min_value:
        return f"value {value:g} is below the minimum {min_value:g}"
    if max_value is not None and value > max_value:
        return f"value {value:g} is above the maximum {max_value:g}"
    return None


def coerce(value: Value, type_name: str) -> Value:
    """``value`` as the Python value of the built-in type ``type_name``; CommandRejected if lossy.

    >>> coerce(215, "Double"), coerce(3.0, "UInt32"), coerce(1, "Boolean"), coerce(42, "String")
    (215.0, 3, True, '42')
    >>> coerce(3.5, "Int32")
    Traceback (most recent call last):
    ...
    clusterbrain.connectors.opcua.commands.CommandRejected: value 3.5 is not a whole number (Int32)
    >>> coerce(-1, "UInt16")
    Traceback (most recent call last):
    ...
    clusterbrain.connectors.opcua.commands.CommandRejected: value -1 does not fit UInt16 (0..65535)
    """
    if type_name not in WRITABLE_TYPES:
        raise CommandRejected(f"the variable's data type {type_name} cannot take a command value")
    if type_name == "String":
        return value if isinstance(value, str) else _text(value)
    if type_name == "Boolean":
        return _boolean(value)
    if isinstance(value, str):
        raise CommandRejected(f"value {value!r} is not a number ({type_name})")
    if type_name in FLOAT_TYPES:
        return float(value)
    return _integer(value, type_name)


def _text(value: Value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _boolean(value: Value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise CommandRejected(f"value {value!r} is not a boolean (true/false or 1/0)")


def _integer(value: int | float, type_name: str) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise CommandRejected(f"value {value:g} is not a whole number ({type_name})")
    number = int(value)
    low, high = INTEGER_RANGES[type_name]
    if not low <= number <= high:
        raise CommandRejected(f"value {number} does not fit {type_name} ({low}..{high})")
    return number
