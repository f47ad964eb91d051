"""The embedded TelemetryStore: one DuckDB file, Arrow batches in, rollups maintained per write.

Layout: ``series`` maps ``(device_id, tag)`` to a small integer so that the big tables store four
bytes per key instead of two strings; ``points`` holds raw points keyed by ``(series_id, ts)``
(numeric and text tags alike, so that idempotency covers both); ``rollup_1m`` and ``rollup_1h``
hold count, sum, min, max and last of numeric values per bucket, updated only from the rows an
insert actually added, so redeliveries never count twice; ``latest`` holds each series' newest
point. Timestamps are stored as UTC in ``TIMESTAMP`` columns and converted in Arrow, never by
DuckDB's session time zone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from clusterbrain.telemetry.store import (
    RANGE_SCHEMA,
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
    quality SMALLINT NOT NULL,
    PRIMARY KEY (series_id, ts)
);
CREATE TABLE IF NOT EXISTS latest (
    series_id INTEGER PRIMARY KEY,
    ts TIMESTAMP NOT NULL,
    value DOUBLE,
    text VARCHAR,
    quality SMALLINT NOT NULL
);
"""

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
INSERT INTO {table}
SELECT series_id, time_bucket(INTERVAL '{step}', ts, TIMESTAMP '1970-01-01') AS bucket,
       count(*), sum(value), min(value), max(value), max(ts), arg_max(value, ts)
FROM fresh_points WHERE value IS NOT NULL
GROUP BY ALL
ON CONFLICT (series_id, bucket) DO UPDATE SET
    cnt = {table}.cnt + excluded.cnt,
    sum = {table}.sum + excluded.sum,
    min = least({table}.min, excluded.min),
    max = greatest({table}.max, excluded.max),
    last_value = CASE WHEN excluded.last_ts > {table}.last_ts
                      THEN excluded.last_value ELSE {table}.last_value END,
    last_ts = greatest({table}.last_ts, excluded.last_ts)
"""

# arg_max skips NULL arguments, so the newest row is taken whole, as a struct: a gap (NULL value)
# or a text point must still become the latest value.
_LATEST_UPSERT = """
INSERT INTO latest
SELECT series_id, ts, newest.value, newest.text, newest.quality
FROM (
    SELECT series_id, max(ts) AS ts, arg_max(struct_pack(value, text, quality), ts) AS newest
    FROM fresh_points GROUP BY series_id
)
ON CONFLICT (series_id) DO UPDATE SET
    ts = excluded.ts, value = excluded.value, text = excluded.text, quality = excluded.quality
WHERE excluded.ts > latest.ts
"""

_ROLLUPS = {
    RollupLevel.MINUTE: ("rollup_1m", "1 minute"),
    RollupLevel.HOUR: ("rollup_1h", "1 hour"),
}

# Aggregates over rollup rows (partial aggregates) and over raw points, per Aggregate.
_ROLLUP_AGG = {
    Aggregate.AVG: "sum(r.sum) / sum(r.cnt)",
    Aggregate.MIN: "min(r.min)",
    Aggregate.MAX: "max(r.max)",
    Aggregate.LAST: "arg_max(r.last_value, r.last_ts)",
    Aggregate.COUNT: "sum(r.cnt)::DOUBLE",
}
_RAW_AGG = {
    Aggregate.AVG: "avg(r.value)",
    Aggregate.MIN: "min(r.value)",
    Aggregate.MAX: "max(r.value)",
    Aggregate.LAST: "arg_max(r.value, r.ts)",
    Aggregate.COUNT: "count(r.value)::DOUBLE",
}

T = TypeVar("T")

_SERIES_FILTER = "s.device_id = $device AND list_contains($tags, s.tag)"


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
        return {(device, tag): int(series_id) for device, tag, series_id in rows}

    def _insert(self, prepared: pa.Table) -> int:
        """Insert new points and fold exactly those into rollups and latest, in one transaction."""
        con = self._con
        con.register("incoming_points", prepared)
        con.execute("BEGIN TRANSACTION")
        try:
            fresh = con.sql(
                "INSERT OR IGNORE INTO points SELECT * FROM incoming_points "
                "RETURNING series_id, ts, value, text, quality"
            ).to_arrow_table()
            if fresh.num_rows:
                con.register("fresh_points", fresh)
                for table, step in _ROLLUPS.values():
                    con.execute(_ROLLUP_UPSERT.format(table=table, step=step))
                con.execute(_LATEST_UPSERT)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("incoming_points")
            con.unregister("fresh_points")
        return int(fresh.num_rows)

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

    def delete_before(self, cutoff: datetime, device_id: str | None = None) -> int:
        query = "DELETE FROM points WHERE ts < $cutoff"
        params: dict[str, Any] = {"cutoff": _naive(cutoff)}
        if device_id is not None:
            query += " AND series_id IN (SELECT series_id FROM series WHERE device_id = $device)"
            params["device"] = device_id
        with self._write_lock, self._guard():
            rows = self._con.sql(query, params=params).fetchall()
        return int(rows[0][0]) if rows else 0

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
    def _guard(self) -> Iterator[None]:
        """Map "cannot use the database" to StoreUnavailable; other errors stay what they are."""
        if self._closed:
            raise StoreUnavailable("the DuckDB store is closed")
        try:
            yield
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            raise StoreUnavailable(f"DuckDB at {self._path} is unavailable: {exc}") from exc


def _naive(moment: datetime) -> datetime:
    """UTC wall-clock time without tzinfo, to match the TIMESTAMP columns exactly."""
    return as_utc(moment).replace(tzinfo=None)


def _naive_ts(prepared: pa.Table) -> pa.Table:
    """Drop the UTC label in Arrow (the values are already UTC) so DuckDB sees TIMESTAMP."""
    index = prepared.schema.get_field_index("ts")
    naive = prepared.column("ts").cast(pa.timestamp("us"))
    return prepared.set_column(index, "ts", naive)


def _as_range_table(table: pa.Table) -> pa.Table:
    return pa.Table.from_arrays(
        [
            table.column("tag").cast(pa.string()),
            table.column("ts").cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
            table.column("value").cast(pa.float64()),
        ],
        schema=RANGE_SCHEMA,
    )


def _raw_query(
    device_id: str, tags: Sequence[str], start: datetime, end: datetime
) -> tuple[str, dict[str, Any]]:
    query = (
        "SELECT s.tag, r.ts, r.value FROM points r JOIN series s USING (series_id) "
        f"WHERE {_SERIES_FILTER} AND r.ts >= $lo AND r.ts < $hi AND r.text IS NULL "
        "ORDER BY s.tag, r.ts"
    )
    params = {"device": device_id, "tags": list(tags), "lo": _naive(start), "hi": _naive(end)}
    return query, params


def _bucket_query(
    device_id: str,
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
    query = (
        f"SELECT s.tag, time_bucket(to_microseconds($step), {time_col}, "
        f"TIMESTAMP '1970-01-01') AS ts, {value} AS value "
        f"FROM {source} r JOIN series s USING (series_id) "
        f"WHERE {_SERIES_FILTER} AND {time_col} >= $lo AND {time_col} < $hi{extra} "
        "GROUP BY s.tag, 2 ORDER BY s.tag, 2"
    )
    params = {
        "device": device_id,
        "tags": list(tags),
        "lo": _naive(lo),
        "hi": _naive(hi),
        "step": bucket // timedelta(microseconds=1),
    }
    return query, params
