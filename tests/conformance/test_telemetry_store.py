"""One conformance suite for every TelemetryStore backend.

Each test runs against DuckDB (a file in tmp_path) and PostgreSQL (a fresh database). Bucketed
answers are checked against a brute-force computation over the same points, so the incremental
rollups are held to exactly what a full scan would say.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.telemetry.duckdb.store import DuckDBStore
from clusterbrain.telemetry.postgres.store import PostgresStore
from clusterbrain.telemetry.store import (
    POINT_SCHEMA,
    RANGE_SCHEMA,
    Aggregate,
    LatestValue,
    StoreUnavailable,
    TelemetryStore,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    backend: TelemetryStore
    if request.param == "duckdb":
        backend = DuckDBStore(tmp_path / "telemetry.duckdb")
    else:
        backend = PostgresStore(request.getfixturevalue("postgres_url"))
    yield backend
    backend.close()


# --- building batches and brute-force answers -----------------------------------------------

Row = tuple[str, str, datetime, float | None, str | None, int]


def batch(rows: Sequence[Row]) -> pa.Table:
    """A POINT_SCHEMA table from ``(device_id, tag, ts, value, text, quality)`` tuples."""
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in POINT_SCHEMA]
    return pa.Table.from_arrays(
        [pa.array(list(col), type=f.type) for col, f in zip(columns, POINT_SCHEMA, strict=True)],
        schema=POINT_SCHEMA,
    )


def numeric(device: str, tag: str, ts: datetime, value: float, quality: int = 0) -> Row:
    return (device, tag, ts, value, None, quality)


@dataclass
class Truth:
    """What the store should hold: the first write of each ``(tag, ts)`` wins."""

    values: dict[tuple[str, datetime], float] = field(default_factory=dict)

    def add(self, rows: Sequence[Row]) -> int:
        new = 0
        for _device, tag, ts, value, _text, _quality in rows:
            key = (tag, ts)
            if key not in self.values and value is not None:
                self.values[key] = value
                new += 1
        return new

    def raw(self, tags: Sequence[str], start: datetime, end: datetime) -> list[tuple]:
        return sorted(
            (tag, ts, value)
            for (tag, ts), value in self.values.items()
            if tag in tags and start <= ts < end
        )

    def buckets(
        self, tags: Sequence[str], start: datetime, end: datetime, step: timedelta, agg: Aggregate
    ) -> list[tuple]:
        """Whole epoch-aligned buckets that overlap ``[start, end)``, aggregated by brute force."""
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        lo = start - (start - epoch) % step
        groups: dict[tuple[str, datetime], list[tuple[datetime, float]]] = {}
        for (tag, ts), value in self.values.items():
            if tag in tags and lo <= ts < end + (-(end - epoch) % step):
                groups.setdefault((tag, ts - (ts - epoch) % step), []).append((ts, value))
        return [(tag, b, _aggregate(groups[(tag, b)], agg)) for tag, b in sorted(groups)]


def _aggregate(points: list[tuple[datetime, float]], agg: Aggregate) -> float:
    values = np.array([v for _, v in points])
    match agg:
        case Aggregate.AVG:
            return float(values.mean())
        case Aggregate.MIN:
            return float(values.min())
        case Aggregate.MAX:
            return float(values.max())
        case Aggregate.LAST:
            return max(points)[1]
        case Aggregate.COUNT:
            return float(len(points))
        case Aggregate.SUM:
            return float(values.sum())
    raise AssertionError(agg)


def rows_of(table: pa.Table) -> list[tuple]:
    assert table.schema.equals(RANGE_SCHEMA), table.schema
    return list(zip(*(table.column(n).to_pylist() for n in RANGE_SCHEMA.names), strict=True))


def assert_same(actual: list[tuple], expected: list[tuple]) -> None:
    assert [(tag, ts) for tag, ts, _ in actual] == [(tag, ts) for tag, ts, _ in expected]
    for (tag, ts, got), (_, _, want) in zip(actual, expected, strict=True):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6), (tag, ts, got, want)


def random_rows(
    device: str, n: int, span: timedelta, seed: int, tags: Sequence[str] = ("a", "b", "c")
) -> list[Row]:
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, span // US, n)
    values = rng.normal(20.0, 5.0, n)
    picks = rng.integers(0, len(tags), n)
    return [
        numeric(device, tags[p], T0 + int(o) * US, float(v))
        for p, o, v in zip(picks, offsets, values, strict=True)
    ]


def write_shuffled(
    store: TelemetryStore, truth: Truth, rows: list[Row], batches: int, seed: int
) -> None:
    """Write rows out of order, in several batches, re-sending some of them with new values."""
    rng = random.Random(seed)
    rows = rows[:]
    rng.shuffle(rows)
    resent = [(d, t, ts, (v or 0.0) + 1000.0, x, q) for d, t, ts, v, x, q in rng.sample(rows, 50)]
    rows += resent
    size = math.ceil(len(rows) / batches)
    for i in range(0, len(rows), size):
        chunk = rows[i : i + size]
        assert store.write(batch(chunk)) == truth.add(chunk)


# --- writing --------------------------------------------------------------------------------


def test_write_returns_the_number_of_new_points(store: TelemetryStore) -> None:
    rows = [numeric("d1", "temp", T0 + i * MINUTE, float(i)) for i in range(10)]
    assert store.write(batch(rows)) == 10
    assert store.write(batch([*rows[5:], numeric("d1", "temp", T0 + HOUR, 1.0)])) == 1
    assert store.write(batch([])) == 0


def test_the_same_batch_twice_stores_and_counts_once(store: TelemetryStore) -> None:
    rows = random_rows("d1", 500, 3 * HOUR, seed=1)
    tags, end = ["a", "b", "c"], T0 + 3 * HOUR
    assert store.write(batch(rows)) == len({(r[1], r[2]) for r in rows})
    before = [store.query_range("d1", tags, T0, end, step, agg) for step, agg in ROLLUP_PROBES]
    assert store.write(batch(rows)) == 0
    after = [store.query_range("d1", tags, T0, end, step, agg) for step, agg in ROLLUP_PROBES]
    assert all(a.equals(b) for a, b in zip(after, before, strict=True))
    assert sum(before[0].column("value").to_pylist()) == len({(r[1], r[2]) for r in rows})


ROLLUP_PROBES = [(MINUTE, Aggregate.COUNT), (HOUR, Aggregate.COUNT), (HOUR, Aggregate.AVG)]


def test_duplicates_inside_one_batch_are_stored_once_first_wins(store: TelemetryStore) -> None:
    rows = [
        numeric("d1", "temp", T0, 1.0),
        numeric("d1", "temp", T0 + MINUTE, 2.0),
        numeric("d1", "temp", T0, 99.0),
        numeric("d1", "temp", T0 + MINUTE, 98.0),
    ]
    assert store.write(batch(rows)) == 2
    raw = store.query_range("d1", ["temp"], T0, T0 + HOUR)
    assert rows_of(raw) == [("temp", T0, 1.0), ("temp", T0 + MINUTE, 2.0)]
    count = store.query_range("d1", ["temp"], T0, T0 + HOUR, HOUR, Aggregate.COUNT)
    assert rows_of(count) == [("temp", T0, 2.0)]


def test_a_point_is_keyed_by_device_tag_and_ts(store: TelemetryStore) -> None:
    rows = [
        numeric("d1", "temp", T0, 1.0),
        numeric("d2", "temp", T0, 2.0),
        numeric("d1", "rpm", T0, 3.0),
    ]
    assert store.write(batch(rows)) == 3
    assert rows_of(store.query_range("d2", ["temp", "rpm"], T0, T0 + MINUTE)) == [("temp", T0, 2.0)]


def test_write_rejects_rows_without_keys(store: TelemetryStore) -> None:
    bad = pa.table({"device_id": ["d1"], "tag": [None], "ts": [T0], "value": [1.0]})
    with pytest.raises(InvalidInput):
        store.write(bad)


def test_timestamps_without_zone_are_utc(store: TelemetryStore) -> None:
    naive = pa.table(
        {
            "device_id": ["d1", "d1"],
            "tag": ["temp", "temp"],
            "ts": pa.array([T0.replace(tzinfo=None), (T0 + MINUTE).replace(tzinfo=None)]),
            "value": [1.0, 2.0],
            "quality": pa.array([0, 0], pa.int16()),
        }
    )
    assert naive.schema.field("ts").type == pa.timestamp("us")
    assert store.write(naive) == 2
    assert store.write(batch([numeric("d1", "temp", T0, 5.0)])) == 0  # same instant, aware
    nanos = pa.table(
        {
            "device_id": ["d1"],
            "tag": ["temp"],
            "ts": pa.array([(T0 + 2 * MINUTE).replace(tzinfo=None)], pa.timestamp("ns")),
            "value": [3.0],
        }
    )
    assert store.write(nanos) == 1
    got = rows_of(store.query_range("d1", ["temp"], T0, T0 + HOUR))
    assert got == [("temp", T0, 1.0), ("temp", T0 + MINUTE, 2.0), ("temp", T0 + 2 * MINUTE, 3.0)]
    assert all(ts.utcoffset() == timedelta(0) for _, ts, _ in got)
    naive_query = store.query_range("d1", ["temp"], T0.replace(tzinfo=None), T0 + MINUTE)
    assert rows_of(naive_query) == [("temp", T0, 1.0)]


# --- latest ---------------------------------------------------------------------------------


def test_latest_newer_wins_and_older_writes_do_not_regress(store: TelemetryStore) -> None:
    store.write(batch([numeric("d1", "temp", T0 + 2 * MINUTE, 2.0), numeric("d1", "rpm", T0, 7.0)]))
    store.write(batch([numeric("d1", "temp", T0 + MINUTE, 1.0, quality=2)]))  # older: ignored
    assert store.latest("d1", ["temp"]) == [
        LatestValue("d1", "temp", T0 + 2 * MINUTE, 2.0, None, 0)
    ]
    store.write(batch([numeric("d1", "temp", T0 + 3 * MINUTE, 3.0, quality=1)]))
    assert store.latest("d1") == [
        LatestValue("d1", "rpm", T0, 7.0, None, 0),
        LatestValue("d1", "temp", T0 + 3 * MINUTE, 3.0, None, 1),
    ]
    assert store.latest("d1", []) == []
    assert store.latest("unknown-device") == []


def test_latest_within_one_batch_takes_the_newest_point(store: TelemetryStore) -> None:
    rows = [numeric("d1", "temp", T0 + i * MINUTE, float(i)) for i in (3, 9, 1, 4)]
    store.write(batch(rows))
    assert store.latest("d1") == [LatestValue("d1", "temp", T0 + 9 * MINUTE, 9.0, None, 0)]


def test_text_tags_have_latest_values_but_no_numeric_series(store: TelemetryStore) -> None:
    rows: list[Row] = [
        ("d1", "mode", T0, None, "AUTO", 0),
        ("d1", "mode", T0 + MINUTE, None, "MANUAL", 0),
        numeric("d1", "temp", T0, 20.5),
    ]
    assert store.write(batch(rows)) == 3
    assert store.write(batch(rows[:1])) == 0
    assert store.latest("d1") == [
        LatestValue("d1", "mode", T0 + MINUTE, None, "MANUAL", 0),
        LatestValue("d1", "temp", T0, 20.5, None, 0),
    ]
    assert store.query_range("d1", ["mode"], T0, T0 + HOUR).num_rows == 0
    assert store.query_range("d1", ["mode"], T0, T0 + HOUR, MINUTE).num_rows == 0
    counts = store.query_range("d1", ["mode", "temp"], T0, T0 + HOUR, HOUR, Aggregate.COUNT)
    assert rows_of(counts) == [("temp", T0, 1.0)]


def test_text_range_query_returns_text_points_in_bounds(store: TelemetryStore) -> None:
    rows: list[Row] = [
        ("d1", "state", T0, None, "running", 0),
        ("d1", "state", T0 + MINUTE, None, "down", 0),
        ("d1", "state", T0 + HOUR, None, "idle", 0),
        ("d2", "state", T0, None, "setup", 0),
        numeric("d1", "temp", T0, 20.5),
    ]
    assert store.write(batch(rows)) == 5
    table = store.query_text("d1", ["state", "temp"], T0, T0 + HOUR)
    assert table.to_pydict() == {
        "tag": ["state", "state"],
        "ts": [T0, T0 + MINUTE],
        "text": ["running", "down"],
    }
    assert store.query_text("d1", [], T0, T0 + HOUR).num_rows == 0


def test_latest_of_many_devices_in_one_read(store: TelemetryStore) -> None:
    rows: list[Row] = [
        numeric("d1", "a", T0, 1.0),
        numeric("d1", "a", T0 + MINUTE, 2.0),
        ("d2", "b", T0, None, "idle", 0),
        numeric("d3", "a", T0, 5.0),
    ]
    store.write(batch(rows))
    assert store.latest_many(["d1", "d2"]) == [
        LatestValue("d1", "a", T0 + MINUTE, 2.0, None, 0),
        LatestValue("d2", "b", T0, None, "idle", 0),
    ]
    assert store.latest_many(["d1", "d2", "d3"], ["a"]) == [
        LatestValue("d1", "a", T0 + MINUTE, 2.0, None, 0),
        LatestValue("d3", "a", T0, 5.0, None, 0),
    ]
    assert store.latest_many([]) == []


def test_last_before_is_the_newest_point_strictly_before_a_moment(store: TelemetryStore) -> None:
    rows: list[Row] = [
        numeric("d1", "a", T0, 1.0),
        ("d1", "b", T0 + MINUTE, None, "idle", 0),
        numeric("d1", "a", T0 + HOUR, 3.0),
        numeric("d2", "a", T0 + 2 * MINUTE, 9.0),
    ]
    store.write(batch(rows))
    found = store.last_before("d1", ["a", "b"], T0 + HOUR)
    assert found == LatestValue("d1", "b", T0 + MINUTE, None, "idle", 0)
    assert store.last_before("d1", ["a"], T0 + HOUR) == LatestValue("d1", "a", T0, 1.0, None, 0)
    assert store.last_before("d1", ["a"], T0) is None
    assert store.last_before("d1", [], T0 + HOUR) is None


def test_many_device_reads_equal_the_per_device_reads(store: TelemetryStore) -> None:
    rows = [
        *random_rows("d1", 800, 3 * HOUR, seed=1),
        *random_rows("d2", 500, 3 * HOUR, seed=2),
        *random_rows("d3", 300, 3 * HOUR, seed=3),
        *[("d1", "state", T0 + i * 7 * MINUTE, None, "running", 0) for i in range(20)],
        *[("d3", "state", T0 + i * 11 * MINUTE + US, None, "idle", 0) for i in range(9)],
    ]
    store.write(batch(rows))
    devices, tags = ["d3", "d1", "nobody"], ["a", "c", "state"]
    start, end = T0 + 13 * MINUTE + 5 * US, T0 + 2 * HOUR + 31 * MINUTE
    for step, agg in ((None, Aggregate.AVG), (HOUR, Aggregate.SUM), (MINUTE, Aggregate.MAX)):
        many = store.query_range_many(devices, tags, start, end, step, agg)
        assert many.schema.names == ["device_id", *RANGE_SCHEMA.names]
        expected = [
            (device, *row)
            for device in sorted(devices)
            for row in rows_of(store.query_range(device, tags, start, end, step, agg))
        ]
        assert list(zip(*many.to_pydict().values(), strict=True)) == expected
    text = store.query_text_many(devices, tags, start, end).to_pydict()
    assert text["device_id"] == sorted(text["device_id"])
    assert set(text["device_id"]) == {"d1", "d3"}
    for device in ("d1", "d3"):
        mine = [i for i, d in enumerate(text["device_id"]) if d == device]
        single = store.query_text(device, tags, start, end).to_pydict()
        assert [text["ts"][i] for i in mine] == single["ts"]
        assert [text["text"][i] for i in mine] == single["text"]
    for moment in (T0, start, T0 + HOUR, end):
        for names in (["state"], ["a", "b"]):
            found = store.last_before_many(devices, names, moment)
            for device in devices:
                assert found.get(device) == store.last_before(device, names, moment)
            recent = store.last_before_many(devices, names, moment, since=moment - 20 * MINUTE)
            assert recent == {d: v for d, v in found.items() if v.ts >= moment - 20 * MINUTE}
    assert store.query_range_many([], tags, start, end).num_rows == 0
    assert store.query_text_many(devices, [], start, end).num_rows == 0
    assert store.last_before_many(devices, [], end) == {}


def test_points_without_value_are_raw_gaps_not_aggregated(store: TelemetryStore) -> None:
    rows: list[Row] = [numeric("d1", "temp", T0, 4.0), ("d1", "temp", T0 + US, None, None, 2)]
    assert store.write(batch(rows)) == 2
    raw = rows_of(store.query_range("d1", ["temp"], T0, T0 + MINUTE))
    assert raw == [("temp", T0, 4.0), ("temp", T0 + US, None)]
    for step in (timedelta(seconds=10), MINUTE):
        counts = store.query_range("d1", ["temp"], T0, T0 + MINUTE, step, Aggregate.COUNT)
        assert rows_of(counts) == [("temp", T0, 1.0)]
    assert store.latest("d1") == [LatestValue("d1", "temp", T0 + US, None, None, 2)]


# --- ranges and buckets ---------------------------------------------------------------------


def test_raw_range_is_half_open_and_ordered_by_tag_then_ts(store: TelemetryStore) -> None:
    rows = [numeric("d1", tag, T0 + i * US, float(i)) for i in (5, 0, 3, 1) for tag in ("b", "a")]
    store.write(batch(rows))
    got = rows_of(store.query_range("d1", ["b", "a", "zzz"], T0 + US, T0 + 5 * US))
    assert got == [
        ("a", T0 + US, 1.0),
        ("a", T0 + 3 * US, 3.0),
        ("b", T0 + US, 1.0),
        ("b", T0 + 3 * US, 3.0),
    ]
    assert store.query_range("d1", [], T0, T0 + HOUR).num_rows == 0


BUCKETS = [
    timedelta(seconds=10),  # raw level
    MINUTE,
    5 * MINUTE,
    7 * MINUTE,  # not a divisor of the hour: epoch alignment matters
    HOUR,
    2 * HOUR,
]


@pytest.mark.parametrize("agg", list(Aggregate))
def test_bucket_aggregates_match_brute_force(store: TelemetryStore, agg: Aggregate) -> None:
    truth = Truth()
    write_shuffled(store, truth, random_rows("d1", 3000, 5 * HOUR, seed=7), batches=6, seed=7)
    tags = ["a", "c"]
    windows = [(T0, T0 + 5 * HOUR), (T0 + 47 * MINUTE + 13 * US, T0 + 3 * HOUR + 5 * MINUTE)]
    for start, end in windows:
        for step in BUCKETS:
            got = rows_of(store.query_range("d1", tags, start, end, step, agg))
            assert_same(got, truth.buckets(tags, start, end, step, agg))


def test_random_raw_range_matches_brute_force(store: TelemetryStore) -> None:
    truth = Truth()
    write_shuffled(store, truth, random_rows("d1", 2000, 2 * HOUR, seed=3), batches=4, seed=3)
    start, end = T0 + 17 * MINUTE + 3 * US, T0 + 71 * MINUTE
    got = rows_of(store.query_range("d1", ["a", "b"], start, end))
    assert got == truth.raw(["a", "b"], start, end)


def test_bucketed_ranges_cover_whole_buckets(store: TelemetryStore) -> None:
    store.write(
        batch([numeric("d1", "temp", T0 + s * timedelta(seconds=1), 1.0) for s in range(120)])
    )
    got = store.query_range(
        "d1",
        ["temp"],
        T0 + timedelta(seconds=30),
        T0 + timedelta(seconds=61),
        MINUTE,
        Aggregate.COUNT,
    )
    assert rows_of(got) == [("temp", T0, 60.0), ("temp", T0 + MINUTE, 60.0)]


OFFSETS = st.one_of(
    st.integers(0, 3 * HOUR // US - 1),
    st.sampled_from([0, 1, 59_999_999, 60_000_000, 3_599_999_999, 3_600_000_000]),
)
POINTS = st.tuples(st.sampled_from(["a", "b"]), OFFSETS, st.floats(-1e6, 1e6))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(POINTS, max_size=40), min_size=1, max_size=5))
def test_rollups_equal_brute_force_for_any_write_order(
    store: TelemetryStore, batches: list[list[tuple[str, int, float]]]
) -> None:
    """Duplicates, re-sent points and out-of-order batches never skew the incremental rollups."""
    device = f"prop-{uuid.uuid4().hex[:10]}"  # a fresh series per example, same store
    truth = Truth()
    for points in batches:
        rows = [numeric(device, tag, T0 + offset * US, value) for tag, offset, value in points]
        assert store.write(batch(rows)) == truth.add(rows)
    start, end = T0 - HOUR, T0 + 4 * HOUR
    for step in (MINUTE, 5 * MINUTE, HOUR):
        for agg in Aggregate:
            got = rows_of(store.query_range(device, ["a", "b"], start, end, step, agg))
            assert_same(got, truth.buckets(["a", "b"], start, end, step, agg))


# --- retention ------------------------------------------------------------------------------


def test_retention_deletes_raw_points_but_rollups_still_answer(store: TelemetryStore) -> None:
    truth = Truth()
    write_shuffled(store, truth, random_rows("d1", 1000, 4 * HOUR, seed=5), batches=3, seed=5)
    store.write(batch([numeric("d2", "a", T0, 1.0)]))
    tags, end = ["a", "b", "c"], T0 + 4 * HOUR
    probes = [(step, agg) for step in (MINUTE, 15 * MINUTE, HOUR) for agg in Aggregate]
    before = [store.query_range("d1", tags, T0, end, step, agg) for step, agg in probes]

    cutoff = T0 + 2 * HOUR
    assert store.delete_before(cutoff, device_id="d1") == len(truth.raw(tags, T0, cutoff))
    assert store.query_range("d1", tags, T0, cutoff).num_rows == 0
    assert rows_of(store.query_range("d1", tags, cutoff, end)) == truth.raw(tags, cutoff, end)
    assert store.query_range("d2", ["a"], T0, end).num_rows == 1  # other device untouched
    after = [store.query_range("d1", tags, T0, end, step, agg) for step, agg in probes]
    assert all(a.equals(b) for a, b in zip(after, before, strict=True))

    assert store.delete_before(end + HOUR) == len(truth.raw(tags, cutoff, end)) + 1
    hourly = store.query_range("d1", tags, T0, end, HOUR, Aggregate.COUNT)
    assert hourly.equals(before[probes.index((HOUR, Aggregate.COUNT))])
    assert store.latest("d1", ["a"])  # latest survives retention too


# --- operations -----------------------------------------------------------------------------


def test_ping_and_close(store: TelemetryStore) -> None:
    assert isinstance(store, TelemetryStore)
    store.ping()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.write(batch([numeric("d1", "temp", T0, 1.0)]))
    store.close()  # idempotent


def test_one_writer_and_concurrent_readers(store: TelemetryStore) -> None:
    """The ingest writer thread and API reader threads share one store."""
    errors: list[BaseException] = []
    done = threading.Event()
    rows = random_rows("d1", 4000, HOUR, seed=11)
    expected = len({(r[1], r[2]) for r in rows})

    def write() -> None:
        try:
            for i in range(0, len(rows), 250):
                store.write(batch(rows[i : i + 250]))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read() -> None:
        try:
            while not done.is_set():
                store.latest("d1")
                store.query_range("d1", ["a", "b"], T0, T0 + HOUR, MINUTE, Aggregate.MAX)
                store.query_range("d1", ["c"], T0, T0 + HOUR)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    total = store.query_range("d1", ["a", "b", "c"], T0, T0 + HOUR, HOUR, Aggregate.COUNT)
    assert sum(total.column("value").to_pylist()) == expected


# --- PostgreSQL only ------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_reconnects_after_its_connections_are_killed(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        assert store.write(batch([numeric("d1", "temp", T0, 1.0)])) == 1
        assert store.latest("d1")
        assert _terminate_other_backends(postgres_url) >= 2  # the writer and the reader

        second = batch([numeric("d1", "temp", T0 + MINUTE, 2.0)])
        try:
            first_try = store.write(second)
        except StoreUnavailable:
            first_try = 0  # the broken connection is reported once, then replaced
        assert first_try + store.write(second) == 1  # stored exactly once over both tries
        assert store.write(batch([numeric("d1", "temp", T0 + 2 * MINUTE, 3.0)])) == 1
        with contextlib.suppress(StoreUnavailable):
            store.ping()  # the reader may learn of its loss only now...
        store.ping()  # ...and is replaced by the next call
        counts = store.query_range("d1", ["temp"], T0, T0 + HOUR, HOUR, Aggregate.COUNT)
        assert rows_of(counts) == [("temp", T0, 3.0)]
    finally:
        store.close()


def _terminate_other_backends(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (killed,) in rows if killed)
