"""Counter increments: resets, rollovers, glitches, jumps, gaps, windows, and simulated shifts."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.production.counters import (
    CounterEvent,
    counter_increments,
    increments_per_window,
)
from clusterbrain.sim import signals

T0 = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)  # 08:00 Monday in Zhongshan


def seconds(n: int) -> list[float]:
    return [T0.timestamp() + i for i in range(n)]


def kinds(values: list[float], **options: float) -> list[str]:
    return [a.kind.value for a in counter_increments(seconds(len(values)), values, **options)[1]]


# --- single cases ------------------------------------------------------------------------------


def test_a_plain_counter_counts_last_minus_first() -> None:
    total, anomalies = counter_increments(seconds(4), [100, 104, 104, 110])
    assert total == 10 and anomalies == []


def test_a_reset_counts_the_parts_since_the_reset() -> None:
    total, anomalies = counter_increments(seconds(5), [500, 510, 0, 2, 9])
    assert total == 10 + 0 + 2 + 7
    [reset] = anomalies
    assert (reset.kind, reset.index, reset.previous, reset.value) == (CounterEvent.RESET, 2, 510, 0)
    assert reset.ts == T0 + timedelta(seconds=2)


def test_a_16_bit_rollover_counts_through_the_wrap() -> None:
    total, anomalies = counter_increments(seconds(4), [65530, 65534, 3, 8], rollover=65536)
    assert total == 4 + 5 + 5
    assert [a.kind for a in anomalies] == [CounterEvent.ROLLOVER]


def test_max_step_tells_a_rollover_from_a_reset() -> None:
    # From 65000 a wrap to 3 would be 539 parts in one second: implausible, so it is a reset.
    assert counter_increments(seconds(2), [65000, 3], rollover=65536, max_step=50).total == 3
    assert kinds([65000, 3], rollover=65536, max_step=50) == ["reset"]
    # Without a bound a drop from the top eighth of the range is read as a wrap.
    assert counter_increments(seconds(2), [65000, 3], rollover=65536).total == 539


def test_glitches_and_jumps_are_flagged_and_not_counted() -> None:
    # A bad read of 3 in the middle of a run, then back: reset counts 3, the return is a jump.
    assert counter_increments(seconds(4), [1000, 3, 1002, 1004], max_step=50).total == 3 + 2
    assert kinds([1000, 3, 1002, 1004], max_step=50) == ["reset", "jump"]
    # A small dip is no reset (the counter did not go near zero): a glitch, then plain counting.
    assert counter_increments(seconds(4), [1000, 998, 1001, 1003], max_step=50).total == 5
    assert kinds([1000, 998, 1001, 1003], max_step=50) == ["glitch"]
    # A spike up and back down to a low value reads as a reset: the error stays below max_step.
    assert counter_increments(seconds(4), [10, 90000, 12, 13], max_step=50).total == 12 + 1
    assert kinds([10, 90000, 12, 13], max_step=50) == ["jump", "reset"]
    assert counter_increments(seconds(4), [1000, 90000, 1002, 1003], max_step=50).total == 1


def test_negative_and_missing_readings_are_dropped() -> None:
    total, anomalies = counter_increments(seconds(5), [10, -1, 12, float("nan"), 15])
    assert total == 5
    [glitch] = anomalies
    assert glitch.kind is CounterEvent.GLITCH and glitch.index == 1 and math.isnan(glitch.previous)
    assert counter_increments(seconds(3), [10, None, 12]).total == 2


def test_max_rate_allows_large_steps_over_gaps() -> None:
    ts = [0.0, 1.0, 3601.0, 3602.0]  # an hour without data
    values = [0, 1, 3000, 3001]
    assert counter_increments(ts, values, max_step=10).total == 2
    assert counter_increments(ts, values, max_step=10, max_rate=1.0).total == 3001


def test_order_of_samples_does_not_matter_and_indices_point_into_the_input() -> None:
    ts = seconds(5)
    values = [500, 510, 0, 2, 9]
    order = [3, 0, 4, 2, 1]
    total, anomalies = counter_increments([ts[i] for i in order], [values[i] for i in order])
    assert total == 19 and anomalies[0].index == order.index(2)


def test_timestamps_may_be_datetimes_or_datetime64() -> None:
    values = [0, 5, 9]
    as_datetimes = [T0 + timedelta(seconds=i) for i in range(3)]
    as_numpy = np.array([np.datetime64(t.replace(tzinfo=None), "us") for t in as_datetimes])
    assert counter_increments(as_datetimes, values).total == 9
    assert counter_increments(as_numpy, values).total == 9


def test_degenerate_and_invalid_input() -> None:
    assert counter_increments([], []) == (0.0, [])
    assert counter_increments([1.0], [5]) == (0.0, [])
    with pytest.raises(InvalidInput):
        counter_increments([1.0, 2.0], [5])
    with pytest.raises(InvalidInput):
        counter_increments([1.0, 2.0], [5, 6], max_step=-1)
    with pytest.raises(InvalidInput):
        counter_increments([1.0, 2.0], [5, 6], rollover=0)
    with pytest.raises(InvalidInput):
        increments_per_window([1.0], [1], [], gaps="later")  # type: ignore[arg-type]


# --- windows -----------------------------------------------------------------------------------


def hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def test_a_reset_at_the_shift_change_books_each_shift_its_own_parts() -> None:
    ts = [hours(h).timestamp() for h in (0, 6, 11.999, 12, 18, 23.999)]
    values = [0, 300, 600, 0, 280, 590]
    shifts = [(hours(0), hours(12)), (hours(12), hours(24))]
    for gaps in ("spread", "next"):
        per_shift = increments_per_window(ts, values, shifts, gaps=gaps)
        assert per_shift == pytest.approx([600, 590])


def test_windows_outside_the_data_count_nothing() -> None:
    ts = [hours(h).timestamp() for h in (1, 2)]
    outside = [(hours(-5), hours(0)), (hours(3), hours(4))]
    assert increments_per_window(ts, [0, 10], outside) == [0.0, 0.0]
    assert increments_per_window(ts, [0, 10], []) == []
    assert increments_per_window(ts[:1], [0], outside) == [0.0, 0.0]


# --- the simulated injection moulding machine --------------------------------------------------


def simulate_counts(seed: int) -> tuple[list[float], list[int]]:
    model = signals.make_model("injection_moulding", np.random.default_rng(seed))
    start = T0.timestamp() - 3600  # 07:00 local: one hour before the day shift begins
    rows = signals.simulate(model, start, 26 * 60, 60.0)  # three shift changes, to 09:00 next day
    return [t for t, _ in rows], [int(row["good_count"]) for _, row in rows]


@pytest.mark.parametrize("seed", range(6))
def test_simulated_shift_resets_lose_no_parts(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signals, "SHIFT_RESET_PROBABILITY", 0.0)
    _, never_reset = simulate_counts(seed)
    monkeypatch.setattr(signals, "SHIFT_RESET_PROBABILITY", 1.0)
    ts, always_reset = simulate_counts(seed)
    assert always_reset[-1] < never_reset[-1]  # the operator did zero the counter
    total, anomalies = counter_increments(ts, always_reset, max_step=2000)
    assert total == never_reset[-1] - never_reset[0]
    assert [a.kind for a in anomalies] == [CounterEvent.RESET] * 3
    shifts = [(hours(h), hours(h + 12)) for h in (-12, 0, 12, 24)]
    per_shift = increments_per_window(ts, always_reset, shifts, gaps="next")
    assert sum(per_shift) == total


# --- properties --------------------------------------------------------------------------------

raw_values = st.lists(st.integers(0, 300), min_size=2, max_size=60)
options = st.fixed_dictionaries(
    {
        "rollover": st.none() | st.just(512),
        "max_step": st.none() | st.integers(0, 100),
        "max_rate": st.none() | st.floats(0, 5),
    }
)


def timestamps(n: int, gaps: list[int]) -> list[float]:
    return [float(x) for x in np.cumsum([1_780_000_000, *gaps[: n - 1]])]


@settings(max_examples=300, deadline=None)
@given(raw_values, st.data(), options)
def test_splitting_a_series_keeps_the_total(
    values: list[int], data: st.DataObject, opts: dict[str, float | None]
) -> None:
    gaps = data.draw(st.lists(st.integers(1, 600), min_size=len(values), max_size=len(values)))
    ts = timestamps(len(values), gaps)
    k = data.draw(st.integers(0, len(values) - 1))
    whole = counter_increments(ts, values, **opts).total
    left = counter_increments(ts[: k + 1], values[: k + 1], **opts).total
    right = counter_increments(ts[k:], values[k:], **opts).total
    assert left + right == whole


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6) | st.just(float("nan")), min_size=0, max_size=40),
    options,
)
def test_counts_are_never_negative(values: list[float], opts: dict[str, float | None]) -> None:
    total, anomalies = counter_increments(seconds(len(values)), values, **opts)
    assert total >= 0 and all(a.counted >= 0 for a in anomalies)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=50), st.none() | st.just(2**32))
def test_a_monotone_series_gives_last_minus_first(values: list[int], rollover: int | None) -> None:
    values.sort()
    total, anomalies = counter_increments(seconds(len(values)), values, rollover=rollover)
    assert total == values[-1] - values[0] and anomalies == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=80), st.data())
def test_resets_and_wraps_are_reconstructed(increments: list[int], data: st.DataObject) -> None:
    """A counter built from known increments, zeroed at random steps or wrapping at 256."""
    resets = data.draw(st.lists(st.booleans(), min_size=len(increments), max_size=len(increments)))
    with_resets, wrapping = [data.draw(st.integers(0, 500))], [data.draw(st.integers(0, 255))]
    for inc, reset in zip(increments, resets, strict=True):
        with_resets.append(inc if reset and with_resets[-1] > inc else with_resets[-1] + inc)
        wrapping.append((wrapping[-1] + inc) % 256)
    ts = seconds(len(with_resets))
    assert counter_increments(ts, with_resets).total == sum(increments)
    assert counter_increments(ts, wrapping, rollover=256, max_step=20).total == sum(increments)


@settings(max_examples=200, deadline=None)
@given(raw_values, st.lists(st.integers(0, 120), max_size=6), options, st.booleans())
def test_windows_that_tile_the_data_add_up_to_the_total(
    values: list[int], cuts: list[int], opts: dict[str, float | None], spread: bool
) -> None:
    ts = seconds(len(values))
    edges = sorted({T0 - timedelta(seconds=1), T0 + timedelta(seconds=len(values) + 1)})
    edges = sorted({*edges, *(T0 + timedelta(seconds=c / 2) for c in cuts)})
    windows = list(itertools.pairwise(edges))
    gaps = "spread" if spread else "next"
    parts = increments_per_window(ts, values, windows, gaps=gaps, **opts)  # type: ignore[arg-type]
    total = counter_increments(ts, values, **opts).total
    assert sum(parts) == pytest.approx(total)
    assert all(p >= -1e-9 for p in parts)
