"""Time elements from raw state intervals and counts, and the classic worked OEE example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterbrain.production.elements import (
    Output,
    planned_runtime,
    time_elements,
    time_elements_by_period,
)
from clusterbrain.production.kpi import compute_kpis, sum_elements
from clusterbrain.production.states import MachineState, StateInterval

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
MIN = timedelta(minutes=1)


def _iv(state: MachineState, a: int, b: int) -> StateInterval:
    return StateInterval(state, T0 + a * MIN, T0 + b * MIN)


def test_worked_example_from_state_intervals_and_counts() -> None:
    """A = 87.5 %, P = 95.2 %, Q = 95 % → OEE 79.2 % (79.1 % with P rounded first)."""
    shift = [(T0, T0 + 480 * MIN)]
    intervals = [
        _iv(MachineState.RUNNING, 0, 200),
        _iv(MachineState.UNPLANNED_DOWN, 200, 230),
        _iv(MachineState.RUNNING, 230, 450),
        _iv(MachineState.UNPLANNED_DOWN, 450, 480),
    ]
    output = Output(good=380, scrap=20, planned_runtime=planned_runtime(400, 60.0))
    elements = time_elements(intervals, shift, [], (T0, T0 + 480 * MIN), output)
    kpis = compute_kpis(elements)
    assert kpis.availability == pytest.approx(0.875)
    assert round(kpis.effectiveness or 0, 3) == 0.952
    assert kpis.quality_ratio == pytest.approx(0.95)
    assert round(kpis.oee or 0, 3) == 0.792
    assert abs((kpis.oee or 0) - 0.791) < 0.001 + 1e-9
    assert elements.failure_events == 2
    assert kpis.mttr == pytest.approx(30 * 60)


def test_breaks_are_planned_down_time_and_setup_is_setup() -> None:
    shift = [(T0, T0 + 480 * MIN)]
    lunch = [(T0 + 240 * MIN, T0 + 300 * MIN)]
    intervals = [
        _iv(MachineState.SETUP, 0, 30),
        _iv(MachineState.RUNNING, 30, 240),
        _iv(MachineState.IDLE, 240, 300),  # lunch: not a loss
        _iv(MachineState.RUNNING, 300, 460),
        _iv(MachineState.IDLE, 460, 480),
    ]
    elements = time_elements(intervals, shift, lunch, (T0, T0 + 480 * MIN), Output())
    assert elements.planned_busy_time == 420 * 60
    assert elements.actual_production_time == 370 * 60
    assert elements.actual_unit_setup_time == 30 * 60
    assert elements.actual_unit_delay_time == 20 * 60
    assert elements.failure_events == 0


def test_offline_time_in_the_shift_is_a_loss_and_work_outside_it_is_not_counted() -> None:
    shift = [(T0 + 60 * MIN, T0 + 120 * MIN)]
    intervals = [_iv(MachineState.RUNNING, 0, 90), _iv(MachineState.OFFLINE, 90, 180)]
    elements = time_elements(intervals, shift, [], (T0, T0 + 180 * MIN), Output())
    assert elements.actual_production_time == 30 * 60
    assert elements.actual_unit_down_time == 30 * 60
    assert compute_kpis(elements).availability == pytest.approx(0.5)


@given(
    st.lists(
        st.tuples(st.sampled_from(list(MachineState)), st.integers(1, 90)), min_size=1, max_size=20
    ),
    st.integers(1, 479),
)
def test_elements_add_up_over_a_split_of_the_period(
    runs: list[tuple[MachineState, int]], cut: int
) -> None:
    intervals, at = [], 0
    for state, minutes in runs:
        intervals.append(_iv(state, at, at + minutes))
        at += minutes
    shift = [(T0, T0 + 480 * MIN)]
    breaks = [(T0 + 100 * MIN, T0 + 130 * MIN)]
    whole = time_elements(intervals, shift, breaks, (T0, T0 + 480 * MIN), Output())
    first = time_elements(intervals, shift, breaks, (T0, T0 + cut * MIN), Output())
    second = time_elements(intervals, shift, breaks, (T0 + cut * MIN, T0 + 480 * MIN), Output())
    summed = sum_elements([first, second])
    for name in (
        "planned_operation_time",
        "planned_down_time",
        "actual_production_time",
        "actual_unit_setup_time",
        "actual_unit_delay_time",
        "actual_unit_down_time",
    ):
        assert getattr(summed, name) == pytest.approx(getattr(whole, name)), name
    # A failure split by the cut is counted once in the whole and twice in the parts at most.
    assert whole.failure_events <= summed.failure_events <= whole.failure_events + 1


_windows = st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 300)), max_size=8).map(
    lambda pairs: [(T0 + a * MIN, T0 + (a + n) * MIN) for a, n in pairs]
)


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(list(MachineState)), st.integers(1, 200)), min_size=1, max_size=30
    ),
    operation=_windows,
    down=_windows,
    cuts=st.lists(st.integers(0, 2400), min_size=2, max_size=8, unique=True),
)
def test_many_periods_at_once_equal_one_period_at_a_time(
    steps: list[tuple[MachineState, int]],
    operation: list[tuple[datetime, datetime]],
    down: list[tuple[datetime, datetime]],
    cuts: list[int],
) -> None:
    intervals, at = [], 0
    for state, minutes in steps:
        intervals.append(_iv(state, at, at + minutes))
        at += minutes
    edges = sorted(cuts)
    periods = [(T0 + a * MIN, T0 + b * MIN) for a, b in zip(edges[::2], edges[1::2], strict=False)]
    outputs = [Output(good=i, scrap=1, planned_runtime=30.0 * i) for i in range(len(periods))]
    batched = time_elements_by_period(intervals, operation, down, periods, outputs)
    for period, output, fast in zip(periods, outputs, batched, strict=True):
        slow = time_elements(intervals, operation, down, period, output)
        assert fast.failure_events == slow.failure_events
        for name in (
            "planned_operation_time",
            "planned_down_time",
            "actual_production_time",
            "actual_unit_setup_time",
            "actual_unit_delay_time",
            "actual_unit_down_time",
            "actual_order_execution_time",
            "time_to_restoration",
            "good_quantity",
        ):
            assert getattr(fast, name) == pytest.approx(getattr(slow, name), abs=1e-6), name
