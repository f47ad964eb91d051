"""States and counts kept while data arrives equal those derived from the raw points."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.service import authenticate_token
from clusterbrain.production import oee_service
from clusterbrain.production.derived import DERIVED_GOOD, stored_counts, stored_intervals
from clusterbrain.production.oee_service import (
    DEFAULT_RULES,
    MachineSetup,
    raw_counts,
    state_intervals,
)
from clusterbrain.production.states import STATE_CODE
from clusterbrain.production.tracking import Folded, ProductionTracker, _fold_states
from clusterbrain.telemetry.decode import PointColumns
from clusterbrain.telemetry.store import StoreUnavailable, TelemetryStore
from support.production import CALENDAR, MIN, SHIFT_START, worked_shift_table
from support.world import World

STATES = ["running", "idle", "down", "setup"]
_DAYS = itertools.count(20)


def _stored(runtime: Runtime, world: World, hours: int) -> list[tuple[str, object, object]]:
    found = stored_intervals(
        runtime.store,
        world.a.device_id,
        DEFAULT_RULES,
        SHIFT_START,
        SHIFT_START + timedelta(hours=hours),
    )
    return [(i.state.value, i.start, i.end) for i in found]


def _derived(runtime: Runtime, world: World, hours: int) -> list[tuple[str, object, object]]:
    setup = MachineSetup(world.a.machine_id, world.a.device_id, DEFAULT_RULES)
    found = state_intervals(runtime.store, setup, SHIFT_START, SHIFT_START + timedelta(hours=hours))
    return [(i.state.value, i.start, i.end) for i in found]


def test_worked_shift_in_three_batches_matches_the_derivation(
    runtime: Runtime, world: World
) -> None:
    table = worked_shift_table(world.a.device_id)
    runtime.store.write(table)
    third = table.num_rows // 3
    for offset in (0, third, 2 * third):
        runtime.tracker.process(table.slice(offset, third if offset < 2 * third else None))
    stored = _stored(runtime, world, 12)
    assert stored == _derived(runtime, world, 12)
    assert [s for s, _, _ in stored] == [
        "running",
        "unplanned_down",
        "running",
        "unplanned_down",
        "offline",
    ]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(STATES), st.integers(1, 900)), min_size=1, max_size=40
    ),
    cuts=st.lists(st.integers(0, 40), max_size=4),
)
def test_any_sequence_in_any_batches_matches_the_derivation(
    runtime: Runtime, world: World, steps: list[tuple[str, int]], cuts: list[int]
) -> None:
    """Random states with random gaps (some longer than the 300 s offline limit)."""
    runtime.store.delete_before(SHIFT_START + timedelta(days=30))
    runtime.tracker.reload()
    columns = PointColumns()
    at = SHIFT_START
    for state, gap_s in steps:
        columns.append(world.a.device_id, "state", int(at.timestamp() * 1e6), None, state, 0)
        at += timedelta(seconds=gap_s)
    table = columns.to_table()
    runtime.store.write(table)
    edges = sorted({0, table.num_rows, *(c for c in cuts if c < table.num_rows)})
    for lo, hi in itertools.pairwise(edges):
        runtime.tracker.process(table.slice(lo, hi - lo))
    assert _stored(runtime, world, 12) == _derived(runtime, world, 12)


def test_live_states_through_ingest_and_the_api(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    headers = {"Authorization": f"Bearer {world.a.device_secret}"}
    for minute, state in ((0, "running"), (1, "running"), (2, "down"), (3, "running")):
        ts = (SHIFT_START + minute * MIN).isoformat()
        client.post(
            f"/api/v1/ingest/{world.a.device_id}/telemetry",
            json={"ts": ts, "values": {"state": state}},
            headers=headers,
        )
    span = {"from": SHIFT_START.isoformat(), "to": (SHIFT_START + 4 * MIN).isoformat()}
    url = f"/api/v1/machines/{world.a.machine_id}/state-intervals"
    deadline = time.monotonic() + 15
    body: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        body = client.get(url, params=span, headers=world.a.headers).json()
        if len(body) == 3:
            break
        time.sleep(0.1)
    assert [b["state"] for b in body] == ["running", "unplanned_down", "running"]
    assert client.get(url, params=span, headers=world.b.headers).status_code == 404


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 40), st.integers(1, 1800), st.booleans()), min_size=1, max_size=60
    ),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    edges=st.lists(st.integers(0, 36 * 60), min_size=2, max_size=6, unique=True),
)
def test_counts_in_any_batches_equal_those_from_raw_points(
    runtime: Runtime,
    world: World,
    steps: list[tuple[int, int, bool]],
    cuts: list[int],
    edges: list[int],
) -> None:
    """A counter with random rises, resets and gaps; windows aligned to hours or not.

    Each example writes to days of its own: deleting raw points keeps the rollups.
    """
    base = SHIFT_START + timedelta(days=3 * next(_DAYS))
    runtime.store.delete_before(base)
    runtime.tracker.reload()
    columns = PointColumns()
    at, count, readings = base, 0, []
    for made, gap_s, reset in steps:
        count = made if reset else count + made
        readings.append(count)
        columns.append(world.a.device_id, "good_count", int(at.timestamp() * 1e6), count, None, 0)
        at += timedelta(seconds=gap_s)
    table = columns.to_table()
    runtime.store.write(table)
    bounds = sorted({0, table.num_rows, *(c for c in cuts if c < table.num_rows)})
    for lo, hi in itertools.pairwise(bounds):
        runtime.tracker.process(table.slice(lo, hi - lo))
    minutes = sorted(edges)
    windows = [(base + a * MIN, base + b * MIN) for a, b in itertools.pairwise(minutes)]
    stored = stored_counts(runtime.store, world.a.device_id, [DERIVED_GOOD], windows)
    raw = raw_counts(runtime.store, world.a.device_id, "good_count", windows)
    assert stored[DERIVED_GOOD] == raw
    whole = (base - MIN, at + MIN)
    made_in_total = 0
    for previous, value in itertools.pairwise(readings):
        made_in_total += value - previous if value >= previous else value  # a drop is a reset
    assert stored_counts(runtime.store, world.a.device_id, [DERIVED_GOOD], [whole]) == {
        DERIVED_GOOD: [made_in_total]
    }


def test_kpis_from_tracked_data_equal_those_from_raw_points(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    headers = world.a.headers
    put = client.put(f"/api/v1/sites/{world.a.site_id}/calendar", json=CALENDAR, headers=headers)
    assert put.status_code == 200, put.text
    settings = client.put(
        f"/api/v1/machines/{world.a.machine_id}/production-settings",
        json={"ideal_cycle_time_s": 60, "state_rules": {"state_tag": "state"}},
        headers=headers,
    )
    assert settings.status_code == 200, settings.text
    table = worked_shift_table(world.a.device_id)
    runtime.store.write(table)
    runtime.tracker.process(table)
    start, end = SHIFT_START - timedelta(hours=2), SHIFT_START + timedelta(days=2)
    with session_scope(runtime.sessions) as session:
        principal = authenticate_token(session, world.a.token)
        _, stored = oee_service.machine_kpis_by_period(
            session,
            runtime.store,
            principal,
            world.a.machine_id,
            start,
            end,
            "shift",
            source="stored",
        )
        _, raw = oee_service.machine_kpis_by_period(
            session, runtime.store, principal, world.a.machine_id, start, end, "shift", source="raw"
        )
    assert [r.elements for r in stored] == [r.elements for r in raw]
    assert stored[0].kpis.oee == pytest.approx(19 / 24)
    assert stored[0].elements.good_quantity == 380
    span = {"from": start.isoformat(), "to": (SHIFT_START + timedelta(hours=12)).isoformat()}
    body = client.get(f"/api/v1/machines/{world.a.machine_id}/kpis", params=span, headers=headers)
    assert body.json()["kpis"]["oee"] == pytest.approx(19 / 24)
    latest = client.get(f"/api/v1/devices/{world.a.device_id}/telemetry/latest", headers=headers)
    assert {v["tag"] for v in latest.json()} == {"state", "good_count", "scrap_count"}


class _Outage:
    """The runtime's store, with writes refused while ``down`` (as when the server is away)."""

    def __init__(self, store: TelemetryStore) -> None:
        self.store, self.down = store, False

    def write(self, batch: pa.Table) -> int:
        if self.down:
            raise StoreUnavailable("store is down")
        return self.store.write(batch)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def test_derived_points_wait_while_the_store_is_down(runtime: Runtime, world: World) -> None:
    outage = _Outage(runtime.store)
    tracker = ProductionTracker(runtime.sessions, outage)  # type: ignore[arg-type]
    table = worked_shift_table(world.a.device_id)
    runtime.store.write(table)
    half = table.num_rows // 2
    outage.down = True
    assert tracker.process(table.slice(0, half)) > 0
    assert (
        runtime.store.query_text(
            world.a.device_id, ["$state"], SHIFT_START, SHIFT_START + timedelta(days=1)
        ).num_rows
        == 0
    )
    outage.down = False
    tracker.process(table.slice(half))
    assert _stored(runtime, world, 12) == _derived(runtime, world, 12)
    assert tracker.dropped_points._value.get() == 0


def test_a_tracker_behind_ingest_folds_the_queued_batches_together(
    runtime: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of two machines interleaved, queued while the tracker was busy: folded in one
    pass (one write of derived points), with the same states as the raw points give."""
    a = worked_shift_table(world.a.device_id)
    b = worked_shift_table(world.b.device_id)
    runtime.store.write(a)
    runtime.store.write(b)
    tracker = ProductionTracker(runtime.sessions, runtime.store)
    sixth = a.num_rows // 6
    for n in range(6):
        length = sixth if n < 5 else None
        tracker.observe(a.slice(n * sixth, length))
        tracker.observe(b.slice(n * sixth, length))
    folded: list[int] = []
    process = tracker.process
    monkeypatch.setattr(tracker, "process", lambda t: folded.append(t.num_rows) or process(t))
    tracker.start()
    try:
        deadline = time.monotonic() + 30
        while sum(folded) < a.num_rows + b.num_rows and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        tracker.stop()
    assert folded == [a.num_rows + b.num_rows]
    assert _stored(runtime, world, 12) == _derived(runtime, world, 12)
    found = stored_intervals(
        runtime.store,
        world.b.device_id,
        DEFAULT_RULES,
        SHIFT_START,
        SHIFT_START + timedelta(hours=12),
    )
    assert [i.state.value for i in found] == [s for s, _, _ in _stored(runtime, world, 12)]


MACHINE_STATES = list(STATE_CODE)


def _fold_one_by_one(
    folded: Folded, hold_s: float | None, samples: list[tuple[int, str]]
) -> list[tuple[int, str]]:
    """The state fold written sample by sample: the reference for the array version."""
    hold_us = None if hold_s is None else round(hold_s * 1e6)
    made = []
    for ts, state in samples:
        last = folded.last_us
        if last is not None and ts <= last:
            continue
        if folded.state is None or last is None:
            made.append((ts, state))
        elif hold_us is not None and ts - last > hold_us:
            made += [(last + hold_us, "offline"), (ts, state)]
        elif state != folded.state:
            made.append((ts, state))
        folded.state, folded.last_us = state, ts
    return made


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 40), st.sampled_from(MACHINE_STATES)), max_size=12),
        min_size=1,
        max_size=4,
    ),
    hold_s=st.sampled_from([None, 5e-6, 12e-6]),
    start=st.none() | st.tuples(st.integers(0, 20), st.sampled_from(MACHINE_STATES)),
)
def test_the_array_state_fold_equals_the_fold_sample_by_sample(
    batches: list[list[tuple[int, str]]],
    hold_s: float | None,
    start: tuple[int, str] | None,
) -> None:
    """Duplicate times, samples older than the last one folded, gaps longer than the hold,
    across batches: the same changes as folding one sample at a time."""
    rules = DEFAULT_RULES.model_copy(update={"offline_after_s": hold_s})
    mine, theirs = Folded(), Folded()
    if start is not None:
        mine.last_us, mine.state = start
        theirs.last_us, theirs.state = start
    for batch in batches:
        samples = sorted(batch, key=lambda s: s[0])
        out = PointColumns()
        ts = np.array([t for t, _ in samples], dtype=np.int64)
        codes = np.array([STATE_CODE[s] for _, s in samples], dtype=np.int8)
        _fold_states(out, "d", mine, rules, ts, codes)
        assert list(zip(out.ts, out.text, strict=True)) == _fold_one_by_one(theirs, hold_s, samples)
        assert (mine.state, mine.last_us) == (theirs.state, theirs.last_us)
