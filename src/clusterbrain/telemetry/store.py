"""The TelemetryStore protocol that every backend implements, and its shared vocabulary.

A point is ``(device_id, tag, ts, value, quality)``; text-valued tags carry ``text`` and a null
``value``. Writes are idempotent on ``(device_id, tag, ts)``: writing the same point twice stores it
once and counts it once in the rollups.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clusterbrain.platform.errors import InvalidInput, Unavailable
from clusterbrain.telemetry.quality import Quality as Quality  # re-exported for callers

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

TEXT_SCHEMA = pa.schema(
    [
        pa.field("tag", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("text", pa.string()),
    ]
)

MANY_RANGE_SCHEMA = pa.schema([pa.field("device_id", pa.string()), *RANGE_SCHEMA])
"""RANGE_SCHEMA of many devices at once: each row names its device."""

MANY_TEXT_SCHEMA = pa.schema([pa.field("device_id", pa.string()), *TEXT_SCHEMA])

DERIVED_PREFIX = "$"
"""Tags that begin with this are series the platform derives (never a device's tag name)."""
ROLLUP_1M = timedelta(minutes=1)
ROLLUP_1H = timedelta(hours=1)


class Aggregate(enum.StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    COUNT = "count"
    SUM = "sum"


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

    def latest_many(
        self, device_ids: Sequence[str], tags: Sequence[str] | None = None
    ) -> list[LatestValue]:
        """:meth:`latest` of many devices in one read (a live overview of a whole shop floor)."""
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
        bucket (see :func:`rollup_level_for`) so that long ranges never scan raw points. Every
        bucket overlapping ``[start, end)`` is answered whole (see :func:`bucket_window`).
        Aggregates cover points that have a numeric value; text points are never included.
        """
        ...

    def query_text(
        self, device_id: str, tags: Sequence[str], start: datetime, end: datetime
    ) -> pa.Table:
        """Text points (e.g. a machine's ``state``) in ``[start, end)`` as TEXT_SCHEMA, by tag, ts."""
        ...

    def last_before(
        self, device_id: str, tags: Sequence[str], moment: datetime
    ) -> LatestValue | None:
        """The newest point of any of ``tags`` strictly before ``moment``, or None."""
        ...

    def query_range_many(
        self,
        device_ids: Sequence[str],
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
        agg: Aggregate = Aggregate.AVG,
    ) -> pa.Table:
        """:meth:`query_range` of many devices in one read, as MANY_RANGE_SCHEMA ordered by
        device, tag and ts (a year of every machine's hourly counts in one query)."""
        ...

    def query_text_many(
        self, device_ids: Sequence[str], tags: Sequence[str], start: datetime, end: datetime
    ) -> pa.Table:
        """:meth:`query_text` of many devices in one read, as MANY_TEXT_SCHEMA by device, tag, ts."""
        ...

    def last_before_many(
        self,
        device_ids: Sequence[str],
        tags: Sequence[str],
        moment: datetime,
        since: datetime | None = None,
    ) -> dict[str, LatestValue]:
        """:meth:`last_before` of many devices in one read, by device; devices without a point
        before ``moment`` (and at or after ``since``, when given) are left out."""
        ...

    def delete_before(self, cutoff: datetime, device_id: str | None = None) -> int:
        """Retention: delete raw points older than ``cutoff``; rollups are kept. Returns rows."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable if the backend cannot be reached."""
        ...

    def close(self) -> None: ...


# --- Helpers shared by the backends ------------------------------------------------------------

SeriesKey = tuple[str, str]
"""``(device_id, tag)``: one time series; backends store it once and refer to it by an integer id."""

SeriesResolver = Callable[[list[SeriesKey]], dict[SeriesKey, int]]

PREPARED_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.int32(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string()),
        pa.field("quality", pa.int16(), nullable=False),
    ]
)


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; naive input is taken to be UTC already, like naive batch columns."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def bucket_window(start: datetime, end: datetime, bucket: timedelta) -> tuple[datetime, datetime]:
    """``[start, end)`` widened to whole epoch-aligned buckets.

    Rollups cannot split a bucket, so a bucketed query answers for every bucket that overlaps the
    range, in full; raw-level buckets use the same rule so that every level agrees.
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    lo = as_utc(start) - (as_utc(start) - epoch) % bucket
    over = (as_utc(end) - epoch) % bucket
    hi = as_utc(end) if over == timedelta(0) else as_utc(end) + (bucket - over)
    return lo, hi


def normalize_points(batch: pa.Table | pa.RecordBatch) -> pa.Table:
    """The batch as POINT_SCHEMA.

    Producers differ: some send naive timestamps (taken as UTC), other units or zones, or leave
    out ``text``/``quality``. Casting once here keeps every backend on one exact layout.
    """
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    for name in ("device_id", "tag", "ts"):
        if name not in table.column_names:
            raise InvalidInput(f"telemetry batch lacks the {name!r} column", field=name)
        if table.column(name).null_count:
            raise InvalidInput(f"telemetry batch has null {name!r} values", field=name)
    if not pa.types.is_timestamp(table.schema.field("ts").type):
        raise InvalidInput("telemetry 'ts' must be a timestamp column", field="ts")
    rows = table.num_rows
    columns = [
        table.column("device_id").cast(pa.string()),
        table.column("tag").cast(pa.string()),
        pc.cast(table.column("ts"), pa.timestamp("us", tz="UTC"), safe=False),
        _column_or_null(table, "value", pa.float64(), rows),
        _column_or_null(table, "text", pa.string(), rows),
        pc.fill_null(_column_or_null(table, "quality", pa.int16(), rows), int(Quality.GOOD)),
    ]
    return pa.Table.from_arrays(columns, schema=POINT_SCHEMA)


def _column_or_null(table: pa.Table, name: str, type_: pa.DataType, rows: int) -> pa.ChunkedArray:
    if name in table.column_names:
        return table.column(name).cast(type_)
    return pa.chunked_array([pa.nulls(rows, type_)], type=type_)


def series_keys(points: pa.Table) -> tuple[list[SeriesKey], np.ndarray]:
    """The distinct ``(device_id, tag)`` pairs of a batch and, per row, its index into them.

    Encodes both columns separately and combines the codes, so only the few distinct strings are
    ever touched in Python, never one per row.
    """
    devices = points.column("device_id").combine_chunks().dictionary_encode()
    tags = points.column("tag").combine_chunks().dictionary_encode()
    n_tags = max(len(tags.dictionary), 1)
    codes = devices.indices.to_numpy().astype(np.int64) * n_tags + tags.indices.to_numpy()
    space = len(devices.dictionary) * n_tags
    if space <= max(len(codes), 1 << 16):
        # the codes lie below devices x tags: counting finds the distinct ones in one pass,
        # where np.unique sorts every row
        present = np.bincount(codes, minlength=space) > 0
        unique = np.flatnonzero(present)
        inverse = (np.cumsum(present) - 1)[codes]
    else:
        unique, inverse = np.unique(codes, return_inverse=True)
    device_names = devices.dictionary.to_pylist()
    tag_names = tags.dictionary.to_pylist()
    pairs = [(device_names[c // n_tags], tag_names[c % n_tags]) for c in unique.tolist()]
    return pairs, inverse.reshape(-1)


def first_occurrences(series_id: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Indices of the first row of each ``(series_id, ts)``, in key order.

    In-batch duplicates are dropped here (first one wins, like a later redelivery), and key order
    makes index inserts local and lock order deterministic for concurrent writers.
    """
    order = np.lexsort((ts_us, series_id))  # stable: equal keys keep batch order
    sid, ts = series_id[order], ts_us[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1])
    return order[keep]


class SeriesCache:
    """``(device_id, tag)`` → series id, remembered in memory because ids never change.

    Not thread-safe on its own: backends call it under their write lock.
    """

    def __init__(self) -> None:
        self._ids: dict[SeriesKey, int] = {}

    def prepare(self, batch: pa.Table | pa.RecordBatch, resolve: SeriesResolver) -> pa.Table:
        """A batch as PREPARED_SCHEMA: series ids instead of names, deduplicated, in key order.

        ``resolve`` creates (or finds) ids for pairs this cache has not seen, committed before
        the points go in, so a failed write never leaves the cache pointing at nothing.
        """
        points = normalize_points(batch)
        if points.num_rows == 0:
            return PREPARED_SCHEMA.empty_table()
        pairs, inverse = series_keys(points)
        missing = [pair for pair in pairs if pair not in self._ids]
        if missing:
            self._ids.update(resolve(missing))
        lookup = np.fromiter((self._ids[pair] for pair in pairs), np.int32, len(pairs))
        series_id = lookup[inverse]
        ts_us = points.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
        keep = pa.array(first_occurrences(series_id, ts_us))
        columns = [pa.array(series_id, pa.int32()).take(keep)]
        columns += [points.column(name).take(keep) for name in ("ts", "value", "text", "quality")]
        return pa.Table.from_arrays(columns, schema=PREPARED_SCHEMA)

    def clear(self) -> None:
        self._ids.clear()


def rows_by_device(table: pa.Table) -> dict[str, pa.Table]:
    """A batch of points split by device: each device's rows, in the batch's order.

    One stable sort and zero-copy slices, instead of filtering the whole batch once per device.

    >>> batch = pa.table({"device_id": ["b", "a", "b"], "value": [1.0, 2.0, 3.0]})
    >>> {d: rows["value"].to_pylist() for d, rows in rows_by_device(batch).items()}
    {'a': [2.0], 'b': [1.0, 3.0]}
    """
    if table.num_rows == 0:
        return {}
    devices = table.column("device_id").combine_chunks().dictionary_encode()
    names = devices.dictionary.to_pylist()
    if len(names) == 1:  # a whole batch from one device, as a backfill writes it
        return {str(names[0]): table}
    ranks = np.empty(len(names), dtype=np.int64)
    ranks[sorted(range(len(names)), key=lambda i: str(names[i]))] = np.arange(len(names))
    codes = ranks[devices.indices.to_numpy(zero_copy_only=False)]  # in device order
    order = np.argsort(codes, kind="stable")  # integers: no string comparison per row
    ordered = table.take(pa.array(order)).combine_chunks()
    by_rank = sorted(str(name) for name in names)
    ends = np.flatnonzero(np.diff(codes[order])) + 1
    parts: dict[str, pa.Table] = {}
    for start, end in zip([0, *ends.tolist()], [*ends.tolist(), len(codes)], strict=True):
        parts[by_rank[codes[order[start]]]] = ordered.slice(start, end - start)
    return parts
