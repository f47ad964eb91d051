"""What every field-protocol connector of the gateway delivers and counts, as plain values.

A connector (OPC UA, Modbus TCP, ...) reads one field device and hands batches of readings to the
gateway through an ``emit`` callback; the gateway turns them into telemetry messages on the uplink.
Commands travel the other way through ``FieldSource.write``. Connectors keep their protocol
library behind this shape, so reconnects, timeouts and counters live in one place per protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from clusterbrain.telemetry.quality import Quality

Value = float | int | bool | str


class Reading(NamedTuple):
    """One value of one tag at the time the field device (or the connector) stamped it.

    A named tuple, not a frozen dataclass: a poll makes one per value, and a frozen dataclass
    takes three to four times as long to build (1.3 µs against 0.36 µs here), which at 100,000
    values a second is a tenth of a CPU.
    """

    tag: str
    ts_us: int
    """Microseconds since the epoch, UTC: the source timestamp when the device gives one."""
    value: Value | None
    quality: Quality = Quality.GOOD


class Sample(NamedTuple):
    """Good values of several tags read at the same instant: one object for a whole block.

    A fast poll hands these over instead of a ``Reading`` per value: building a reading per
    register and grouping them again by timestamp for the payload cost the gateway more than
    the Modbus request itself. Only good values travel this way; a bad or uncertain one is a
    ``Reading`` with its quality.
    """

    ts_us: int
    values: dict[str, Value]
    """Never changed once handed over (the payload encoder copies before it adds to it)."""


Emit = Callable[[Sequence[Reading | Sample]], None]
"""Receives each batch of readings; must not block (the gateway queues or spools)."""


def value_count(batch: Iterable[Reading | Sample]) -> int:
    """How many tag values a batch carries.

    >>> value_count([Reading("a", 1, 1.0), Sample(2, {"b": 2, "c": 3})])
    3
    """
    return sum(len(item.values) if isinstance(item, Sample) else 1 for item in batch)


def as_readings(batch: Iterable[Reading | Sample]) -> list[Reading]:
    """A batch with every sample spelled out as readings (for tests and slow consumers).

    >>> as_readings([Sample(2, {"b": 2})])
    [Reading(tag='b', ts_us=2, value=2, quality=<Quality.GOOD: 0>)]
    """
    out: list[Reading] = []
    for item in batch:
        if isinstance(item, Sample):
            out.extend(Reading(tag, item.ts_us, value) for tag, value in item.values.items())
        else:
            out.append(item)
    return out


@dataclass(slots=True)
class SourceCounters:
    """What a connector counts; published as gateway telemetry and on its /metrics."""

    reads: int = 0
    """Values read successfully."""
    errors: int = 0
    """Failed requests, timeouts and malformed answers."""
    reconnects: int = 0
    """Connections (re-)established after the first."""
    connected: bool = False
    last_error: str = ""
    writes: int = 0
    write_errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class WriteRefused(Exception):
    """A command could not be carried out; ``reason`` says why in a line an engineer can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FieldSource(Protocol):
    """One field device (or server) read by the gateway."""

    name: str
    counters: SourceCounters

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        """Read until ``stop`` is set; reconnect with backoff on any failure, never raise."""
        ...

    async def write(self, tag: str, value: Value) -> None:
        """Write one value (a command); raise WriteRefused with the reason when it fails."""
        ...


def backoff_delays(initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0) -> list[float]:
    """The waits between reconnect attempts: exponential up to ``maximum``, then constant.

    >>> backoff_delays(0.5, 4.0)
    [0.5, 1.0, 2.0, 4.0]
    """
    delays, delay = [], initial
    while delay < maximum:
        delays.append(delay)
        delay *= factor
    delays.append(maximum)
    return delays


class Backoff:
    """Exponential reconnect backoff; ``reset`` after a connection held."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self._delays = backoff_delays(initial, maximum)
        self._attempt = 0

    def next_delay(self) -> float:
        delay = self._delays[min(self._attempt, len(self._delays) - 1)]
        self._attempt += 1
        return delay

    def reset(self) -> None:
        self._attempt = 0

    async def wait(self, stop: asyncio.Event) -> bool:
        """Sleep the next delay; True when ``stop`` was set meanwhile."""
        try:
            await asyncio.wait_for(stop.wait(), self.next_delay())
        except TimeoutError:
            return False
        return True
