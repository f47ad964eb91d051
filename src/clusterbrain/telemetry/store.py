"""The TelemetryStore protocol that every backend implements, and its shared vocabulary.

A point is ``(device_id, tag, ts, value, quality)``; text-valued tags carry ``text`` and a null
``value``. Writes are idempotent on ``(device_id, tag, ts)``: writing the same point twice stores it
once and counts it once in the rollups.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import pyarrow as pa

from clusterbrain.platform.errors import Unavailable

POINT_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=True),
        pa.field("text", pa.string(), nullable=True),
        pa.field("quality", pa.int16(), nullable=False),
    ]
)

RANGE_SCHEMA = pa.schema(
    [
        pa.field("tag", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("value", pa.float64()),
    ]
)

ROLLUP_1M = timedelta(minutes=1)
ROLLUP_1H = timedelta(hours=1)


class Quality(enum.IntEnum):
    """Point quality, after OPC UA's good / uncertain / bad."""

    GOOD = 0
    UNCERTAIN = 1  # e.g. outside the profile's expected range
    BAD = 2


class Aggregate(enum.StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    COUNT = "count"


class RollupLevel(enum.StrEnum):
    RAW = "raw"
    MINUTE = "1m"
    HOUR = "1h"


@dataclass(frozen=True, slots=True)
class LatestValue:
    device_id: str
    tag: str
    ts: datetime
    value: float | None
    text: str | None
    quality: int


class StoreUnavailable(Unavailable):
    """The backend cannot be reached; callers spool and retry."""


def rollup_level_for(bucket: timedelta | None) -> RollupLevel:
    """The coarsest rollup whose resolution divides ``bucket``; raw when no bucket.

    >>> rollup_level_for(timedelta(hours=2)), rollup_level_for(timedelta(minutes=5))
    (<RollupLevel.HOUR: '1h'>, <RollupLevel.MINUTE: '1m'>)
    >>> rollup_level_for(timedelta(seconds=10)), rollup_level_for(None)
    (<RollupLevel.RAW: 'raw'>, <RollupLevel.RAW: 'raw'>)
    """
    if bucket is None:
        return RollupLevel.RAW
    if bucket % ROLLUP_1H == timedelta(0):
        return RollupLevel.HOUR
    if bucket % ROLLUP_1M == timedelta(0):
        return RollupLevel.MINUTE
    return RollupLevel.RAW


@runtime_checkable
class TelemetryStore(Protocol):
    """Where points live. Implementations: ``duckdb`` (embedded) and ``postgres``."""

    def write(self, batch: pa.Table) -> int:
        """Store a batch of POINT_SCHEMA rows; return how many were new (duplicates ignored).

        Rollups (1 min, 1 h) are updated from the new points only, in the same transaction.
        Raises StoreUnavailable when the backend cannot be reached.
        """
        ...

    def latest(self, device_id: str, tags: Sequence[str] | None = None) -> list[LatestValue]:
        """The newest point of each tag of a device (optionally only some tags)."""
        ...

    def query_range(
        self,
        device_id: str,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
        agg: Aggregate = Aggregate.AVG,
    ) -> pa.Table:
        """Numeric points in ``[start, end)`` as RANGE_SCHEMA, ordered by tag then ts.

        Without ``bucket``, raw points. With one, one row per non-empty bucket (ts = bucket start,
        buckets aligned to the Unix epoch), computed from the coarsest rollup that divides the
        bucket (see :func:`rollup_level_for`) so that long ranges never scan raw points.
        """
        ...

    def delete_before(self, cutoff: datetime, device_id: str | None = None) -> int:
        """Retention: delete raw points older than ``cutoff``; rollups are kept. Returns rows."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable if the backend cannot be reached."""
        ...

    def close(self) -> None: ...
