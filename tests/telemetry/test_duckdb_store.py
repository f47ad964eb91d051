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


def _states(changes: dict[int, str], tag: str = "$state", device: str = "d1") -> pa.Table:
    return pa.table(
        {
            "device_id": [device] * len(changes),
            "tag": [tag] * len(changes),
            "ts": [T0 + timedelta(seconds=s) for s in changes],
            "text": list(changes.values()),
        }
    )


def _derived_rows(path: Path) -> int:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return int(con.sql("SELECT count(*) FROM derived_text").fetchall()[0][0])
    finally:
        con.close()


def test_derived_state_changes_are_read_from_their_own_table(tmp_path: Path) -> None:
    """The tracker's state changes are kept beside the raw points as well: a year of them is
    read without scanning billions of points. Reads give the same rows as from ``points``,
    redeliveries and raw text tags do not go there, deletes and files without it are handled."""
    import duckdb

    path = tmp_path / "telemetry.duckdb"
    store = DuckDBStore(path)
    store.write(points("temp", range(0, 60)))
    store.write(_states({0: "running", 30: "idle"}, tag="state"))  # a raw text tag
    assert store.write(_states({0: "running", 30: "idle", 50: "running"})) == 3
    assert store.write(_states({30: "idle", 55: "unplanned_down"})) == 1  # one new
    end = T0 + timedelta(minutes=1)
    derived = store.query_text_many(["d1"], ["$state"], T0, end)
    assert derived.column("text").to_pylist() == ["running", "idle", "running", "unplanned_down"]
    raw = store.query_text_many(["d1"], ["state"], T0, end)
    assert raw.column("text").to_pylist() == ["running", "idle"]
    store.close()
    assert _derived_rows(path) == 4

    # a file from before the table: it is filled from points when the file is opened
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE derived_text")
    con.close()
    store = DuckDBStore(path)
    again = store.query_text_many(["d1"], ["$state"], T0, end)
    assert again.column("text").to_pylist() == derived.column("text").to_pylist()
    assert store.delete_before(T0 + timedelta(seconds=40)) > 0
    left = store.query_text_many(["d1"], ["$state"], T0, end)
    assert left.column("text").to_pylist() == ["running", "unplanned_down"]
    store.close()
    assert _derived_rows(path) == 2
