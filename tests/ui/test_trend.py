"""The machine page's trend over long ranges comes from the store's rollups, never raw points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

from clusterbrain.telemetry.decode import PointColumns
from clusterbrain.telemetry.duckdb.store import DuckDBStore
from clusterbrain.ui.machines import read_trend


def test_a_year_of_trend_is_read_from_the_hourly_rollup(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "telemetry.duckdb")
    try:
        end = datetime(2026, 12, 1, tzinfo=UTC)
        start = end - timedelta(days=365)
        columns = PointColumns()
        for hour in range(365 * 24):
            moment = start + timedelta(hours=hour, minutes=30)
            columns.append("imm-1", "cycle_time", round(moment.timestamp() * 1e6), 20.0, None, 0)
        store.write(columns.to_table())
        # the raw points go; what the rollups folded in as they were written stays
        assert store.delete_before(end) == 365 * 24
        assert store.query_range("imm-1", ["cycle_time"], start, end).num_rows == 0
        console = cast(Any, SimpleNamespace(runtime=SimpleNamespace(store=store)))
        series = read_trend(console, "imm-1", ["cycle_time"], start, end, ZoneInfo("UTC"))
    finally:
        store.close()
    points = series["cycle_time"]
    assert len(points) in (730, 731)  # 12 h buckets
    assert {value for _, value in points} == {20.0}
    assert points[1][0] - points[0][0] == 12 * 3600 * 1000
