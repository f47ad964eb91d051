"""Write throughput of the TelemetryStore backends against bare inserts into unindexed tables.

    .venv/bin/python bench/store.py [--points 500000] [--batch 50 5000 50000] [--only duckdb]

Each store write includes what ingest pays for: normalizing the batch, mapping series ids,
in-batch dedupe, the check for points already stored (a primary key in PostgreSQL, a look
within the batch's time span in DuckDB), and the 1 min / 1 h rollups and latest values. The
baselines are the engine's own floor: DuckDB inserting the registered Arrow table, PostgreSQL a
binary COPY into a table without indexes. Batches are built before the clock starts.

``--grow-hours`` then writes that many hours of 50 machines × 3 tags at 1 s into growing DuckDB
files, an hour per write: the store as it is ("store": no key on points), the store on a file
whose points table has the primary key DuckDB stores used to have ("keyed"), and a bare
insert (series ids mapped, then into a table without key or rollups: "bare"); rates over the
whole run, over its first and last tenth, and the file's bytes per point.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import psycopg
import pyarrow as pa

from clusterbrain.telemetry.duckdb.store import DuckDBStore
from clusterbrain.telemetry.postgres.store import PostgresStore, _numeric_copy_payload
from clusterbrain.telemetry.store import POINT_SCHEMA, SeriesCache, SeriesKey

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
START_US = 1_709_251_200_000_000  # 2024-03-01T00:00:00Z
SMALL_BATCH_POINTS = 20_000  # tiny batches are per-call bound; fewer points tell the same story


def make_batches(points: int, size: int, devices: int = 100, tags: int = 10) -> list[pa.Table]:
    """``points`` rows, one per (device, tag) per second, cut into batches of ``size``."""
    i = np.arange(points)
    series = i % (devices * tags)
    device_names = np.array([f"dev-{d:04d}" for d in range(devices)], dtype=object)
    tag_names = np.array([f"tag-{t:02d}" for t in range(tags)], dtype=object)
    table = pa.Table.from_arrays(
        [
            pa.array(device_names[series // tags], pa.string()),
            pa.array(tag_names[series % tags], pa.string()),
            pa.array(START_US + (i // (devices * tags)) * 1_000_000, pa.timestamp("us", "UTC")),
            pa.array(np.random.default_rng(0).normal(50, 10, points)),
            pa.nulls(points, pa.string()),
            pa.array(np.zeros(points, np.int16)),
        ],
        schema=POINT_SCHEMA,
    )
    return [table.slice(start, size) for start in range(0, points, size)]


def rate(batches: list[pa.Table], write: Callable[[pa.Table], object]) -> float:
    began = time.perf_counter()
    for batch in batches:
        write(batch)
    return sum(int(b.num_rows) for b in batches) / (time.perf_counter() - began)


def duckdb_rates(batches: list[pa.Table], folder: Path) -> tuple[float, float]:
    store = DuckDBStore(folder / f"store-{uuid.uuid4().hex}.duckdb")
    try:
        stored = rate(batches, store.write)
    finally:
        store.close()
    con = duckdb.connect(str(folder / f"bare-{uuid.uuid4().hex}.duckdb"))
    con.execute(
        "CREATE TABLE raw (device_id VARCHAR, tag VARCHAR, ts TIMESTAMPTZ, value DOUBLE, "
        "text VARCHAR, quality SMALLINT)"
    )

    def bare(batch: pa.Table) -> None:
        con.register("incoming", batch)
        con.execute("INSERT INTO raw SELECT * FROM incoming")

    try:
        return stored, rate(batches, bare)
    finally:
        con.close()


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"cbbench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def numbered(keys: list[SeriesKey]) -> dict[SeriesKey, int]:
    """Series ids without a series table: the baseline pays only for the COPY itself."""
    return {key: hash(key) & 0x7FFF_FFFF for key in keys}


def postgres_rates(batches: list[pa.Table]) -> tuple[float, float]:
    with scratch_database() as url:
        store = PostgresStore(url)
        try:
            stored = rate(batches, store.write)
        finally:
            store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE raw (series_id integer, ts timestamptz, value double precision, "
                "quality smallint)"
            )
            series = SeriesCache()

            def bare(batch: pa.Table) -> None:
                prepared = series.prepare(batch, numbered)
                with (
                    conn.transaction(),
                    conn.cursor() as cur,
                    cur.copy("COPY raw FROM STDIN (FORMAT BINARY)") as copy,
                ):
                    copy.write(_numeric_copy_payload(prepared))

            return stored, rate(batches, bare)


KEYED_POINTS = (
    "CREATE TABLE points (series_id INTEGER NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE, "
    "text VARCHAR, quality SMALLINT NOT NULL, PRIMARY KEY (series_id, ts))"
)
"""The points table as DuckDB stores made it before they dropped the key (they still open)."""


def hour_batch(hour: int, devices: int = 50, tags: int = 3) -> pa.Table:
    """One hour of ``devices`` × ``tags`` series at 1 point/s, in one write."""
    seconds = np.arange(3600)
    series = devices * tags
    return pa.Table.from_arrays(
        [
            pa.array(np.repeat([f"m-{d:03d}" for d in range(devices)], tags * 3600), pa.string()),
            pa.array(np.tile(np.repeat([f"t{t}" for t in range(tags)], 3600), devices)),
            pa.array(
                np.tile(START_US + (hour * 3600 + seconds) * 1_000_000, series),
                pa.timestamp("us", "UTC"),
            ),
            pa.array(np.tile(np.sin(seconds / 60.0).round(3), series)),
            pa.nulls(series * 3600, pa.string()),
            pa.array(np.zeros(series * 3600, np.int16)),
        ],
        schema=POINT_SCHEMA,
    )


def grow(folder: Path, hours: int, layout: str) -> dict[str, float]:
    """Write ``hours`` hourly batches; rates at the start and end, and the file's bytes/point."""
    path = folder / f"grow-{layout}-{uuid.uuid4().hex[:6]}.duckdb"
    if layout == "keyed":
        with duckdb.connect(str(path)) as con:
            con.execute(KEYED_POINTS)
    if layout == "bare":
        con = duckdb.connect(str(path))
        con.execute(KEYED_POINTS.replace(", PRIMARY KEY (series_id, ts)", ""))
        series = SeriesCache()

        def write(batch: pa.Table) -> object:
            con.register("incoming", series.prepare(batch, numbered))
            return con.execute("INSERT INTO points SELECT * FROM incoming")

        close: Callable[[], object] = con.close
    else:
        store = DuckDBStore(path)
        write, close = store.write, store.close
    times = []
    try:
        for hour in range(hours):
            batch = hour_batch(hour)
            began = time.perf_counter()
            write(batch)
            times.append(time.perf_counter() - began)
    finally:
        close()
    rows = hours * hour_batch(0).num_rows
    first = hour_batch(0).num_rows / statistics.median(times[: max(1, hours // 10)])
    last = hour_batch(0).num_rows / statistics.median(times[-max(1, hours // 10) :])
    return {
        "rows": rows,
        "rate": rows / sum(times),
        "first": first,
        "last": last,
        "bytes": path.stat().st_size / rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[50, 5_000, 50_000])
    parser.add_argument("--only", choices=["duckdb", "postgres"])
    parser.add_argument(
        "--grow-hours",
        type=int,
        default=24,
        help="hours of 150 series at 1 s written into growing DuckDB files (0: skip)",
    )
    args = parser.parse_args()
    print(f"{'backend':<9} {'batch':>7} {'points':>8} {'store rows/s':>13} {'bare rows/s':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.batch:
            points = min(args.points, SMALL_BATCH_POINTS) if size < 1_000 else args.points
            batches = make_batches(points, size)
            for name in ("duckdb", "postgres"):
                if args.only in (None, name):
                    if name == "duckdb":
                        stored, bare = duckdb_rates(batches, Path(folder))
                    else:
                        stored, bare = postgres_rates(batches)
                    print(f"{name:<9} {size:>7} {points:>8} {stored:>13,.0f} {bare:>12,.0f}")
        if args.grow_hours and args.only in (None, "duckdb"):
            print(f"\nDuckDB growing to {args.grow_hours} h of 150 series at 1 s, hourly writes:")
            print(
                f"{'layout':<7} {'rows':>12} {'rows/s':>11} {'first':>11} {'last':>11} {'B/row':>6}"
            )
            for layout in ("store", "keyed", "bare"):
                r = grow(Path(folder), args.grow_hours, layout)
                print(
                    f"{layout:<7} {r['rows']:>12,} {r['rate']:>11,.0f} {r['first']:>11,.0f} "
                    f"{r['last']:>11,.0f} {r['bytes']:>6.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
