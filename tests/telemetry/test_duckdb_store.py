"""DuckDB-specific behaviour: the file outlives the process that wrote it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from clusterbrain.telemetry.duckdb.store import DuckDBStore
from clusterbrain.telemetry.store import Aggregate, LatestValue

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def points(tag: str, seconds: range) -> pa.Table:
    return pa.table(
        {
            "device_id": ["d1"] * len(seconds),
            "tag": [tag] * len(seconds),
            "ts": [T0 + timedelta(seconds=s) for s in seconds],
            "value": [float(s) for s in seconds],
        }
    )


def test_reopening_the_file_keeps_points_rollups_and_series(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.duckdb"
    first = DuckDBStore(path, memory_limit="256MB")
    assert first.write(points("temp", range(0, 90))) == 90
    first.close()

    second = DuckDBStore(str(path))
    assert second.write(points("temp", range(60, 150))) == 60  # 60..89 were already there
    assert second.write(points("rpm", range(0, 10))) == 10  # a new series after reopening
    minutes = second.query_range(
        "d1", ["rpm", "temp"], T0, T0 + timedelta(hours=1), timedelta(minutes=1), Aggregate.COUNT
    )
    assert minutes.column("value").to_pylist() == [10.0, 60.0, 60.0, 30.0]
    assert second.latest("d1", ["temp"]) == [
        LatestValue("d1", "temp", T0 + timedelta(seconds=149), 149.0, None, 0)
    ]
    second.close()


def test_points_are_unique_without_an_index_and_old_keyed_files_still_work(
    tmp_path: Path,
) -> None:
    """New files have no primary key on points (an ART index as large as the data); a write
    stores only keys it does not hold, also when they are older than the newest points, and a
    file made when points had the key takes writes the same way."""
    import duckdb

    fresh = DuckDBStore(tmp_path / "new.duckdb")
    fresh.close()
    con = duckdb.connect(str(tmp_path / "new.duckdb"))
    constraints = con.sql(
        "SELECT count(*) FROM duckdb_constraints() "
        "WHERE table_name = 'points' AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    con.close()
    assert constraints == [(0,)]

    keyed = tmp_path / "keyed.duckdb"
    con = duckdb.connect(str(keyed))
    con.execute(
        "CREATE TABLE points (series_id INTEGER NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE, "
        "text VARCHAR, quality SMALLINT NOT NULL, PRIMARY KEY (series_id, ts))"
    )
    con.close()
    for path in (tmp_path / "new.duckdb", keyed):
        store = DuckDBStore(path)
        try:
            assert store.write(points("temp", range(100, 200))) == 100
            assert store.write(points("temp", range(0, 150))) == 100  # older ones go in too
            assert store.write(points("temp", range(0, 200))) == 0
            hours = store.query_range(
                "d1", ["temp"], T0, T0 + timedelta(hours=1), timedelta(hours=1), Aggregate.COUNT
            )
            assert hours.column("value").to_pylist() == [200.0]
            raw = store.query_range("d1", ["temp"], T0, T0 + timedelta(hours=1))
            assert raw.num_rows == 200
        finally:
            store.close()
