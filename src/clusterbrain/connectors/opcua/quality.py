"""From an OPC UA data value to a reading: quality, timestamp and value, as pure functions.

OPC UA packs the severity of a status code into its two top bits (Part 4, 7.39): 00 good,
01 uncertain, 10 bad (11 is reserved, and read as bad here). The platform's ``Quality`` follows
the same three levels, so the mapping needs no table of individual codes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TypeGuard

from clusterbrain.connectors.source import Value
from clusterbrain.telemetry.quality import Quality

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_NULL_YEAR = 1601
"""OPC UA encodes "no timestamp" as 0 ticks since 1601-01-01, which decoders return as that date."""


def quality_from_status(code: int) -> Quality:
    """The quality of a status code, from its severity bits: ``code >> 30``.

    >>> quality_from_status(0)  # Good
    <Quality.GOOD: 0>
    >>> quality_from_status(0x40920000)  # UncertainSensorNotAccurate
    <Quality.UNCERTAIN: 1>
    >>> quality_from_status(0x808A0000)  # BadSensorFailure
    <Quality.BAD: 2>
    >>> quality_from_status(0xC0000000)  # reserved severity: trust it no more than bad
    <Quality.BAD: 2>
    """
    severity = (code >> 30) & 0b11
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.UNCERTAIN
    return Quality.BAD


def epoch_us(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC, exactly (integer arithmetic); naive means UTC.

    >>> epoch_us(datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC))
    1714550400123456
    >>> epoch_us(datetime(1970, 1, 1, 0, 0, 1))
    1000000
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_US


def _present(moment: datetime | None) -> bool:
    return moment is not None and moment.year > _NULL_YEAR


def timestamp_us(source: datetime | None, server: datetime | None, received_us: int) -> int:
    """The time of a value: the source timestamp, else the server's, else when it arrived.

    The source timestamp is when the device sampled the value, which is what telemetry stores;
    servers that do not set it still stamp when they got it, and a value with neither is stamped
    on receipt by the gateway.

    >>> t = datetime(2024, 5, 1, tzinfo=UTC)
    >>> timestamp_us(t, None, 5) == epoch_us(t)
    True
    >>> timestamp_us(datetime(1601, 1, 1, tzinfo=UTC), t, 5) == epoch_us(t)
    True
    >>> timestamp_us(None, None, 5)
    5
    """
    if source is not None and _present(source):
        return epoch_us(source)
    if server is not None and _present(server):
        return epoch_us(server)
    return received_us


def reading_value(raw: object) -> tuple[bool, Value | None]:
    """``(True, value)`` for what a reading can carry, ``(False, None)`` for anything else.

    Numbers, booleans and strings pass (enumerations as their integer); an empty value passes as
    ``None`` (a bad status usually comes with one). Arrays, structures, byte strings, dates and
    localized texts do not fit one telemetry point and are refused, so the caller can count them.
    Non-finite floats become ``None``: JSON, the uplink's format, has no NaN.

    >>> reading_value(True), reading_value(3), reading_value(2.5), reading_value("PP")
    ((True, True), (True, 3), (True, 2.5), (True, 'PP'))
    >>> reading_value(None), reading_value(float("nan"))
    ((True, None), (True, None))
    >>> reading_value([1.0, 2.0]), reading_value(b"\\x00")
    ((False, None), (False, None))
    """
    if raw is None or isinstance(raw, bool | str):
        return True, raw
    if isinstance(raw, int):
        return True, int(raw)
    if isinstance(raw, float):
        return True, raw if math.isfinite(raw) else None
    return False, None


def changed(
    previous: tuple[Value | None, Quality] | None,
    current: tuple[Value | None, Quality],
    deadband: float | None,
) -> bool:
    """Whether a polled value is news: first value, new quality, or a move beyond the deadband.

    Polling reports by exception like a subscription does (trigger StatusValue, Part 4 7.22.2),
    so both modes send the same stream. A numeric value counts as moved when
    ``|current - previous| > deadband`` (absolute deadband, strict like the server's check);
    booleans and strings count as moved on any change.

    >>> good = Quality.GOOD
    >>> changed(None, (1.0, good), 0.5)
    True
    >>> changed((1.0, good), (1.4, good), 0.5), changed((1.0, good), (1.6, good), 0.5)
    (False, True)
    >>> changed((1.0, good), (1.0, Quality.BAD), 0.5)
    True
    >>> changed((True, good), (False, good), 5.0), changed(("a", good), ("a", good), None)
    (True, False)
    """
    if previous is None or previous[1] != current[1]:
        return True
    old, new = previous[0], current[0]
    if deadband and _is_number(old) and _is_number(new):
        return abs(new - old) > deadband
    return old != new


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
