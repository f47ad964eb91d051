"""The embedded TelemetryStore: one DuckDB file, Arrow batches in, rollups maintained per write.

Layout: ``series`` maps ``(device_id, tag)`` to a small integer so that the big tables store four
bytes per key instead of two strings; ``points`` holds raw points, one per ``(series_id, ts)``
(numeric and text tags alike, so that idempotency covers both), kept unique by each write rather
than by an index (``_FRESH_POINTS``); ``rollup_1m`` and ``rollup_1h`` hold count, sum, min, max
and last of numeric values per bucket, updated only from the rows an insert actually added, so
redeliveries never count twice; ``latest`` holds each series' newest point. Timestamps are stored as UTC in ``TIMESTAMP`` columns and converted in Arrow, never by
DuckDB's session time zone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clusterbrain.telemetry.store import (
    DERIVED_PREFIX,
    MANY_RANGE_SCHEMA,
    MANY_TEXT_SCHEMA,
    RANGE_SCHEMA,
    ROLLUP_1H,
    ROLLUP_1M,
    TEXT_SCHEMA,
    Aggregate,
    LatestValue,
    RollupLevel,
    SeriesCache,
    SeriesKey,
    StoreUnavailable,
    as_utc,
    bucket_window,
    rollup_level_for,
)

_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS series_id_seq;
CREATE TABLE IF NOT EXISTS series (
    series_id INTEGER PRIMARY KEY DEFAULT nextval('series_id_seq'),
    device_id VARCHAR NOT NULL,
    tag VARCHAR NOT NULL,
    UNIQUE (device_id, tag)
);
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    ts TIMESTAMP NOT NULL,
    value DOUBLE,
    text VARCHAR,
    quality SMALLINT NOT NULL
);
CREATE TABLE IF NOT EXISTS latest (
    series_id INTEGER PRIMARY KEY,
    ts TIMESTAMP NOT NULL,
    value DOUBLE,
    text VARCHAR,
    quality SMALLINT NOT NULL
);
"""

_DERIVED_TEXT = """
CREATE TABLE derived_text (
    series_id INTEGER NOT NULL,
    ts TIMESTAMP NOT NULL,
    value DOUBLE,
    text VARCHAR,
    quality SMALLINT NOT NULL
);
INSERT INTO derived_text SELECT p.* FROM points p JOIN series s USING (series_id)
WHERE p.text IS NOT NULL AND starts_with(s.tag, $prefix);
"""
"""The text points of derived series (the production tracker's state changes), also kept in
``points``. A year of them is about a million rows among billions of raw points, spread over
every row group, so that reading them from ``points`` scans the whole table (measured: 1.0 s of
a 2.3 s year of KPIs for 50 machines at 1 s); here they are a small table of their own. Filled
from ``points`` once when a file without it is opened."""

_FRESH_POINTS = """
SELECT i.* FROM incoming_points i ANTI JOIN (
    SELECT series_id, ts FROM points
    WHERE ts BETWEEN $first AND $last AND series_id BETWEEN $low AND $high
) p ON p.series_id = i.series_id AND p.ts = i.ts
"""
"""The rows of a batch the store does not hold yet. ``points`` has no key: a primary key is an
ART index that DuckDB keeps beside the data, about 63 bytes a point on disk and 13 times the
insert time of the point itself (measured on 130 M points), which puts a year of one-second data
from a cluster out of reach of one disk. Instead a write looks for its keys among the points of
its own time span and series, which the zone maps narrow to the row groups that can hold them:
the newest ones for live data, one machine's for a backfill machine after machine. Writes are serialised by the store's write lock, so nothing can come
in between the look and the insert."""

_INSERT_FRESH = f"INSERT INTO points {_FRESH_POINTS} RETURNING series_id, ts, value, text, quality"

_ROLLUP_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    series_id INTEGER NOT NULL,
    bucket TIMESTAMP NOT NULL,
    cnt BIGINT NOT NULL,
    sum DOUBLE NOT NULL,
    min DOUBLE NOT NULL,
    max DOUBLE NOT NULL,
    last_ts TIMESTAMP NOT NULL,
    last_value DOUBLE NOT NULL,
    PRIMARY KEY (series_id, bucket)
);
"""

_ROLLUP_UPSERT = """
INSERT INTO {table} SELECT * FROM rollup_partials
ON CONFLICT (series_id, bucket) DO UPDATE SET
    cnt = {table}.cnt + excluded.cnt,
    sum = {table}.sum + excluded.sum,
    min = least({table}.min, excluded.min),
    max = greatest({table}.max, excluded.max),
    last_value = CASE WHEN excluded.last_ts > {table}.last_ts
                      THEN excluded.last_value ELSE {table}.last_value END,
    last_ts = greatest({table}.last_ts, excluded.last_ts)
"""

_LATEST_UPSERT = """
INSERT INTO latest SELECT * FROM newest_points
ON CONFLICT (series_id) DO UPDATE SET
    ts = excluded.ts, value = excluded.value, text = excluded.text, quality = excluded.quality
WHERE excluded.ts > latest.ts
"""

_ROLLUPS = {
    RollupLevel.MINUTE: ("rollup_1m", ROLLUP_1M // timedelta(microseconds=1)),
    RollupLevel.HOUR: ("rollup_1h", ROLLUP_1H // timedelta(microseconds=1)),
}

# Aggregates over rollup rows (partial aggregates) and over raw points, per Aggregate.
_ROLLUP_AGG = {
    Aggregate.AVG: "sum(r.sum) / sum(r.cnt)",
    Aggregate.MIN: "min(r.min)",
    Aggregate.MAX: "max(r.max)",
    Aggregate.LAST: "arg_max(r.last_value, r.last_ts)",
    Aggregate.COUNT: "sum(r.cnt)::DOUBLE",
    Aggregate.SUM: "sum(r.sum)",
}
_RAW_AGG = {
    Aggregate.AVG: "avg(r.value)",
    Aggregate.MIN: "min(r.value)",
    Aggregate.MAX: "max(r.value)",
    Aggregate.LAST: "arg_max(r.value, r.ts)",
    Aggregate.COUNT: "count(r.value)::DOUBLE",
    Aggregate.SUM: "sum(r.value)",
}

T = TypeVar("T")

_SERIES_FILTER = "s.device_id = $device AND list_contains($tags, s.tag)"
_MANY_FILTER = "list_contains($devices, s.device_id) AND list_contains($tags, s.tag)"


class DuckDBStore:
    """TelemetryStore on an embedded DuckDB file (the default backend).

    One connection writes under a lock (the ingest writer); a second cursor on the same database
    serves readers under its own lock, so API reads see committed snapshots and are not queued
    behind a long write.
    """

    def __init__(self, path: Path | str, *, memory_limit: str = "1GB") -> None:
        self._path = str(path)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._series = SeriesCache()
        self._derived_ids: set[int] = set()  # of the series in the cache
        try:
            self._con = duckdb.connect(self._path, config={"memory_limit": memory_limit})
            self._create_schema()
            self._reader = self._con.cursor()
        except duckdb.Error as exc:
            raise StoreUnavailable(f"cannot open DuckDB at {self._path}: {exc}") from exc
        self._closed = False

    def _create_schema(self) -> None:
        self._con.execute(_SCHEMA)
        for table, _ in _ROLLUPS.values():
            self._con.execute(_ROLLUP_TABLE.format(table=table))
        found = self._con.sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'derived_text'"
        ).fetchall()
        if not found[0][0]:
            with self._transaction():
                self._con.execute(_DERIVED_TEXT, {"prefix": DERIVED_PREFIX})

    # --- writing ---------------------------------------------------------------------------

    def write(self, batch: pa.Table) -> int:
        with self._write_lock, self._guard():
            prepared = self._series.prepare(batch, self._resolve_series)
            if prepared.num_rows == 0:
                return 0
            return self._insert(_naive_ts(prepared))

    def _resolve_series(self, keys: list[SeriesKey]) -> dict[SeriesKey, int]:
        """Create missing series rows and return the ids of ``keys`` (called under the lock)."""
        wanted = pa.table({"device_id": [k[0] for k in keys], "tag": [k[1] for k in keys]})
        self._con.register("wanted_series", wanted)
        try:
            self._con.execute(
                "INSERT INTO series (device_id, tag) SELECT device_id, tag FROM wanted_series "
                "ON CONFLICT (device_id, tag) DO NOTHING"
            )
            rows = self._con.sql(
                "SELECT s.device_id, s.tag, s.series_id FROM series s "
                "JOIN wanted_series w USING (device_id, tag)"
            ).fetchall()
        finally:
            self._con.unregister("wanted_series")
        ids = {(device, tag): int(series_id) for device, tag, series_id in rows}
        self._derived_ids.update(i for (_, tag), i in ids.items() if tag.startswith(DERIVED_PREFIX))
        return ids

    def _insert(self, prepared: pa.Table) -> int:
        """Insert new points and fold exactly those into rollups and latest, in one transaction."""
        con = self._con
        span = pc.min_max(prepared.column("ts"))
        ids = pc.min_max(prepared.column("series_id"))
        bounds = {
            "first": span["min"].as_py(),
            "last": span["max"].as_py(),
            "low": ids["min"].as_py(),
            "high": ids["max"].as_py(),
        }
        con.register("incoming_points", prepared)
        try:
            with self._transaction():
                fresh = con.sql(_INSERT_FRESH, params=bounds).to_arrow_table()
                if fresh.num_rows:
                    self._fold(fresh.sort_by([("series_id", "ascending"), ("ts", "ascending")]))
                    self._keep_derived_text(fresh)
        finally:
            con.unregister("incoming_points")
        return int(fresh.num_rows)

    def _keep_derived_text(self, fresh: pa.Table) -> None:
        """Copy the fresh text points of derived series to ``derived_text``."""
        if not self._derived_ids or fresh.column("text").null_count == fresh.num_rows:
            return
        derived = pa.array(sorted(self._derived_ids), pa.int32())
        mask = pc.and_(
            pc.is_valid(fresh.column("text")), pc.is_in(fresh.column("series_id"), derived)
        )
        self._upsert(
            "derived_text",
            "fresh_derived_text",
            "INSERT INTO {table} SELECT * FROM fresh_derived_text",
            fresh.filter(mask),
        )

    def _fold(self, fresh: pa.Table) -> None:
        """Upsert the fresh rows' per-bucket partial aggregates and newest points.

        The partials are computed in numpy rather than SQL: a DuckDB aggregate costs a few
        milliseconds per statement however small the batch, which dominated small writes.
        """
        columns = _FreshColumns.of(fresh)
        for table, step_us in _ROLLUPS.values():
            self._upsert(table, "rollup_partials", _ROLLUP_UPSERT, _partials(columns, step_us))
        self._upsert("latest", "newest_points", _LATEST_UPSERT, fresh.take(columns.newest()))

    def _upsert(self, table: str, view: str, statement: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        self._con.register(view, rows)
        try:
            self._con.execute(statement.format(table=table))
        finally:
            self._con.unregister(view)

    # --- reading ---------------------------------------------------------------------------

    def latest(self, device_id: str, tags: Sequence[str] | None = None) -> list[LatestValue]:
        query = (
            "SELECT s.device_id, s.tag, l.ts, l.value, l.text, l.quality "
            "FROM latest l JOIN series s USING (series_id) WHERE s.device_id = $device"
        )
        params: dict[str, Any] = {"device": device_id}
        if tags is not None:
            query += " AND list_contains($tags, s.tag)"
            params["tags"] = list(tags)
        rows = self._read(lambda cur: cur.sql(query + " ORDER BY s.tag", params=params).fetchall())
        return [
            LatestValue(device, tag, ts.replace(tzinfo=UTC), value, text, int(quality))
            for device, tag, ts, value, text, quality in rows
        ]

    def latest_many(
        self, device_ids: Sequence[str], tags: Sequence[str] | None = None
    ) -> list[LatestValue]:
        if not device_ids:
            return []
        query = (
            "SELECT s.device_id, s.tag, l.ts, l.value, l.text, l.quality "
            "FROM latest l JOIN series s USING (series_id) WHERE list_contains($devices, s.device_id)"
        )
        params: dict[str, Any] = {"devices": list(device_ids)}
        if tags is not None:
            query += " AND list_contains($tags, s.tag)"
            params["tags"] = list(tags)
        rows = self._read(
            lambda cur: cur.sql(query + " ORDER BY s.device_id, s.tag", params=params).fetchall()
        )
        return [
            LatestValue(device, tag, ts.replace(tzinfo=UTC), value, text, int(quality))
            for device, tag, ts, value, text, quality in rows
        ]

    def query_range(
        self,
        device_id: str,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
        agg: Aggregate = Aggregate.AVG,
    ) -> pa.Table:
        if not tags:
            return RANGE_SCHEMA.empty_table()
        if bucket is None:
            query, params = _raw_query(device_id, tags, start, end)
        else:
            query, params = _bucket_query(device_id, tags, start, end, bucket, Aggregate(agg))
        table = self._read(lambda cur: cur.sql(query, params=params).to_arrow_table())
        return _as_range_table(table)

    def query_text(
        self, device_id: str, tags: Sequence[str], start: datetime, end: datetime
    ) -> pa.Table:
        if not tags:
            return TEXT_SCHEMA.empty_table()
        query = (
            "SELECT s.tag, r.ts, r.text FROM points r JOIN series s USING (series_id) "
            f"WHERE {_SERIES_FILTER} AND r.ts >= $lo AND r.ts < $hi AND r.text IS NOT NULL "
            "ORDER BY s.tag, r.ts"
        )
        params = {"device": device_id, "tags": list(tags), "lo": _naive(start), "hi": _naive(end)}
        table = self._read(lambda cur: cur.sql(query, params=params).to_arrow_table())
        return pa.Table.from_arrays(
            [
                table.column("tag").cast(pa.string()),
                table.column("ts").cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
                table.column("text").cast(pa.string()),
            ],
            schema=TEXT_SCHEMA,
        )

    def last_before(
        self, device_id: str, tags: Sequence[str], moment: datetime
    ) -> LatestValue | None:
        if not tags:
            return None
        query = (
            "SELECT s.device_id, s.tag, r.ts, r.value, r.text, r.quality "
            f"FROM points r JOIN series s USING (series_id) WHERE {_SERIES_FILTER} "
            "AND r.ts < $hi ORDER BY r.ts DESC LIMIT 1"
        )
        params = {"device": device_id, "tags": list(tags), "hi": _naive(moment)}
        rows = self._read(lambda cur: cur.sql(query, params=params).fetchall())
        if not rows:
            return None
        device, tag, ts, value, text, quality = rows[0]
        return LatestValue(device, tag, ts.replace(tzinfo=UTC), value, text, int(quality))

    def query_range_many(
        self,
        device_ids: Sequence[str],
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
        agg: Aggregate = Aggregate.AVG,
    ) -> pa.Table:
        if not tags or not device_ids:
            return MANY_RANGE_SCHEMA.empty_table()
        devices = list(device_ids)
        if bucket is None:
            query, params = _raw_query(devices, tags, start, end)
        else:
            query, params = _bucket_query(devices, tags, start, end, bucket, Aggregate(agg))
        table = self._read(lambda cur: cur.sql(query, params=params).to_arrow_table())
        return _as_range_table(table, many=True)

    def query_text_many(
        self, device_ids: Sequence[str], tags: Sequence[str], start: datetime, end: datetime
    ) -> pa.Table:
        if not tags or not device_ids:
            return MANY_TEXT_SCHEMA.empty_table()
        source = "derived_text" if all(t.startswith(DERIVED_PREFIX) for t in tags) else "points"
        query = (
            f"SELECT s.device_id, s.tag, r.ts, r.text FROM {source} r JOIN series s USING (series_id) "
            f"WHERE {_MANY_FILTER} AND r.ts >= $lo AND r.ts < $hi AND r.text IS NOT NULL"
        )
        params = {
            "devices": list(device_ids),
            "tags": list(tags),
            "lo": _naive(start),
            "hi": _naive(end),
        }
        # Sorted by Arrow: about twice as fast as DuckDB's ORDER BY for a year of state changes.
        table = self._read(lambda cur: cur.sql(query, params=params).to_arrow_table()).sort_by(
            [("device_id", "ascending"), ("tag", "ascending"), ("ts", "ascending")]
        )
        return pa.Table.from_arrays(
            [
                table.column("device_id").cast(pa.string()),
                table.column("tag").cast(pa.string()),
                table.column("ts").cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
                table.column("text").cast(pa.string()),
            ],
            schema=MANY_TEXT_SCHEMA,
        )

    def last_before_many(
        self,
        device_ids: Sequence[str],
        tags: Sequence[str],
        moment: datetime,
        since: datetime | None = None,
    ) -> dict[str, LatestValue]:
        if not tags or not device_ids:
            return {}
        params = {"devices": list(device_ids), "tags": list(tags), "hi": _naive(moment)}
        lower = ""
        if since is not None:
            lower = " AND r.ts >= $lo"
            params["lo"] = _naive(since)
        query = (
            "SELECT s.device_id, s.tag, r.ts, r.value, r.text, r.quality "
            f"FROM points r JOIN series s USING (series_id) WHERE {_MANY_FILTER} AND r.ts < $hi"
            f"{lower} QUALIFY row_number() OVER (PARTITION BY s.device_id ORDER BY r.ts DESC) = 1"
        )
        rows = self._read(lambda cur: cur.sql(query, params=params).fetchall())
        return {
            device: LatestValue(device, tag, ts.replace(tzinfo=UTC), value, text, int(quality))
            for device, tag, ts, value, text, quality in rows
        }

    def delete_before(self, cutoff: datetime, device_id: str | None = None) -> int:
        condition = "ts < $cutoff"
        params: dict[str, Any] = {"cutoff": _naive(cutoff)}
        if device_id is not None:
            condition += (
                " AND series_id IN (SELECT series_id FROM series WHERE device_id = $device)"
            )
            params["device"] = device_id
        with self._write_lock, self._guard(), self._transaction():
            rows = self._con.sql(f"DELETE FROM points WHERE {condition}", params=params)
            deleted = rows.fetchall()
            self._con.execute(f"DELETE FROM derived_text WHERE {condition}", params)
        return int(deleted[0][0]) if deleted else 0

    def ping(self) -> None:
        self._read(lambda cur: cur.sql("SELECT 1").fetchall())

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            if self._closed:
                return
            self._closed = True
            self._reader.close()
            self._con.close()

    # --- plumbing --------------------------------------------------------------------------

    def _read(self, run: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._read_lock, self._guard():
            return run(self._reader)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """The writer's statements inside, committed together or rolled back together."""
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Map "cannot use the database" to StoreUnavailable; other errors stay what they are."""
        if self._closed:
            raise StoreUnavailable("the DuckDB store is closed")
        try:
            yield
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            raise StoreUnavailable(f"DuckDB at {self._path} is unavailable: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _FreshColumns:
    """Newly inserted rows as numpy columns, sorted by ``(series_id, ts)``."""

    series_id: np.ndarray
    ts_us: np.ndarray
    value: np.ndarray  # NaN where NULL; ``has_value`` tells the two apart
    has_value: np.ndarray

    @classmethod
    def of(cls, fresh: pa.Table) -> _FreshColumns:
        value = fresh.column("value").combine_chunks()
        return cls(
            series_id=fresh.column("series_id").combine_chunks().to_numpy(),
            ts_us=fresh.column("ts").combine_chunks().cast(pa.int64()).to_numpy(),
            value=value.to_numpy(zero_copy_only=False),
            has_value=value.is_valid().to_numpy(zero_copy_only=False),
        )

    def newest(self) -> np.ndarray:
        """Index of each series' newest row (text and NULL values included)."""
        sid = self.series_id
        last = np.ones(len(sid), dtype=bool)
        last[:-1] = sid[1:] != sid[:-1]
        result: np.ndarray = np.flatnonzero(last)
        return result


def _partials(fresh: _FreshColumns, step_us: int) -> pa.Table:
    """count, sum, min, max and last of the numeric values per epoch-aligned bucket."""
    keep = fresh.has_value
    sid, ts, value = fresh.series_id[keep], fresh.ts_us[keep], fresh.value[keep]
    if len(sid) == 0:
        return pa.table({})
    bucket = ts - np.mod(ts, step_us)  # np.mod floors, so pre-1970 buckets align too
    first = np.ones(len(sid), dtype=bool)
    first[1:] = (sid[1:] != sid[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(sid)) - 1
    return pa.table(
        {
            "series_id": pa.array(sid[starts], pa.int32()),
            "bucket": pa.array(bucket[starts], pa.timestamp("us")),
            "cnt": pa.array(ends - starts + 1, pa.int64()),
            "sum": np.add.reduceat(value, starts),
            "min": np.minimum.reduceat(value, starts),
            "max": np.maximum.reduceat(value, starts),
            "last_ts": pa.array(ts[ends], pa.timestamp("us")),
            "last_value": value[ends],
        }
    )


def _naive(moment: datetime) -> datetime:
    """UTC wall-clock time without tzinfo, to match the TIMESTAMP columns exactly."""
    return as_utc(moment).replace(tzinfo=None)


def _naive_ts(prepared: pa.Table) -> pa.Table:
    """Drop the UTC label in Arrow (the values are already UTC) so DuckDB sees TIMESTAMP."""
    index = prepared.schema.get_field_index("ts")
    naive = prepared.column("ts").cast(pa.timestamp("us"))
    return prepared.set_column(index, "ts", naive)


def _as_range_table(table: pa.Table, *, many: bool = False) -> pa.Table:
    columns = [
        table.column("tag").cast(pa.string()),
        table.column("ts").cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
        table.column("value").cast(pa.float64()),
    ]
    if many:
        return pa.Table.from_arrays(
            [table.column("device_id").cast(pa.string()), *columns], schema=MANY_RANGE_SCHEMA
        )
    return pa.Table.from_arrays(columns, schema=RANGE_SCHEMA)


def _devices(devices: str | Sequence[str]) -> tuple[str, str, dict[str, Any]]:
    """(leading select columns, series filter, parameters) for one device or a list of them."""
    if isinstance(devices, str):
        return "", _SERIES_FILTER, {"device": devices}
    return "s.device_id, ", _MANY_FILTER, {"devices": list(devices)}


def _raw_query(
    devices: str | Sequence[str], tags: Sequence[str], start: datetime, end: datetime
) -> tuple[str, dict[str, Any]]:
    lead, where, params = _devices(devices)
    query = (
        f"SELECT {lead}s.tag, r.ts, r.value FROM points r JOIN series s USING (series_id) "
        f"WHERE {where} AND r.ts >= $lo AND r.ts < $hi AND r.text IS NULL "
        f"ORDER BY {lead}s.tag, r.ts"
    )
    params.update({"tags": list(tags), "lo": _naive(start), "hi": _naive(end)})
    return query, params


def _bucket_query(
    devices: str | Sequence[str],
    tags: Sequence[str],
    start: datetime,
    end: datetime,
    bucket: timedelta,
    agg: Aggregate,
) -> tuple[str, dict[str, Any]]:
    """SQL for whole epoch-aligned buckets, from the coarsest rollup that divides ``bucket``."""
    if bucket <= timedelta(0):
        raise ValueError("bucket must be positive")
    level = rollup_level_for(bucket)
    if level is RollupLevel.RAW:
        source, time_col, value = "points", "r.ts", _RAW_AGG[agg]
        extra = " AND r.value IS NOT NULL"
    else:
        source, time_col, value = _ROLLUPS[level][0], "r.bucket", _ROLLUP_AGG[agg]
        extra = ""
    lo, hi = bucket_window(start, end, bucket)
    lead, where, params = _devices(devices)
    at = 3 if lead else 2
    query = (
        f"SELECT {lead}s.tag, time_bucket(to_microseconds($step), {time_col}, "
        f"TIMESTAMP '1970-01-01') AS ts, {value} AS value "
        f"FROM {source} r JOIN series s USING (series_id) "
        f"WHERE {where} AND {time_col} >= $lo AND {time_col} < $hi{extra} "
        f"GROUP BY {lead}s.tag, {at} ORDER BY {lead}s.tag, {at}"
    )
    params.update(
        {
            "tags": list(tags),
            "lo": _naive(lo),
            "hi": _naive(hi),
            "step": bucket // timedelta(microseconds=1),
        }
    )
    return query, params
