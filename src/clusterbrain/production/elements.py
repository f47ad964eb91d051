"""From state intervals, calendar windows and counts to ISO 22400-2 time elements (pure).

Mapping of machine states inside the planned busy time (PBT):

- running → actual production time (APT)
- setup → actual unit setup time (AUST)
- idle → actual unit delay time (ADET)
- unplanned down → actual unit down time (ADOT); each interval that starts inside PBT is one
  failure event (FE), and its duration counts as time to restoration (for MTTR)
- offline (no data) → also ADOT: time nobody can account for is lost time, not planned time
- planned stop → none: inside PBT it means the calendar and the machine disagree, which the
  overlay of planned windows has already resolved (see ``states.overlay_planned``)

Running outside the planned busy windows is production beyond the plan: it is not counted in APT,
so availability stays within [0, 1], but its output counts in the quantities.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from clusterbrain.production.calendar import (
    TimeWindow,
    clip_windows,
    epoch_us,
    intersect_windows,
    merge_windows,
    subtract_windows,
    total_seconds,
)
from clusterbrain.production.kpi import TimeElements
from clusterbrain.production.states import (
    STATE_CODE,
    MachineState,
    StateInterval,
    StateRuns,
    durations_in_windows,
)


@dataclass(frozen=True, slots=True)
class Output:
    """What a machine made in a period; planned_runtime is Σ ideal cycle time × quantity (s)."""

    good: float = 0.0
    scrap: float = 0.0
    rework: float = 0.0
    planned_runtime: float = 0.0
    energy_kwh: float = 0.0

    @property
    def produced(self) -> float:
        return self.good + self.scrap + self.rework


def planned_runtime(produced: float, ideal_cycle_time_s: float, units_per_cycle: int = 1) -> float:
    """Ideal time for ``produced`` units (ISO 22400 PRU × PQ).

    >>> planned_runtime(400, 60.0), planned_runtime(400, 60.0, units_per_cycle=4)
    (24000.0, 6000.0)
    """
    return produced * ideal_cycle_time_s / units_per_cycle


def time_elements(
    intervals: Sequence[StateInterval],
    operation_windows: Iterable[tuple[datetime, datetime]],
    down_windows: Iterable[tuple[datetime, datetime]],
    window: tuple[datetime, datetime],
    output: Output,
) -> TimeElements:
    """Time elements of one machine in ``window``.

    ``operation_windows`` are the shifts (POT), ``down_windows`` the breaks and planned
    maintenance inside them (PDOT); both are clipped to ``window``.
    """
    start, end = window
    operation = clip_windows(operation_windows, start, end)
    down = intersect_windows(clip_windows(down_windows, start, end), operation)
    busy = subtract_windows(operation, down)
    seconds = durations_in_windows(intervals, busy)
    failures = _failures(intervals, busy)
    unplanned = seconds[MachineState.UNPLANNED_DOWN] + seconds[MachineState.OFFLINE]
    return TimeElements(
        planned_operation_time=total_seconds(operation),
        planned_down_time=total_seconds(down),
        actual_production_time=seconds[MachineState.RUNNING],
        actual_unit_setup_time=seconds[MachineState.SETUP],
        actual_unit_delay_time=seconds[MachineState.IDLE],
        actual_unit_down_time=unplanned,
        actual_order_execution_time=total_seconds(busy),
        time_to_restoration=seconds[MachineState.UNPLANNED_DOWN],
        produced_quantity=output.produced,
        good_quantity=output.good,
        scrap_quantity=output.scrap,
        rework_quantity=output.rework,
        planned_runtime_total=output.planned_runtime,
        failure_events=failures,
        energy_kwh=output.energy_kwh,
    )


def _failures(intervals: Sequence[StateInterval], busy: list[TimeWindow]) -> int:
    """Unplanned-down intervals that begin inside the planned busy windows."""
    count = 0
    for interval in intervals:
        if interval.state is not MachineState.UNPLANNED_DOWN:
            continue
        if any(w.start <= interval.start < w.end for w in busy):
            count += 1
    return count


# --- many periods at once --------------------------------------------------------------------------

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def time_elements_by_period(
    intervals: StateRuns | Sequence[StateInterval],
    operation_windows: Iterable[tuple[datetime, datetime]],
    down_windows: Iterable[tuple[datetime, datetime]],
    periods: Sequence[tuple[datetime, datetime]],
    outputs: Sequence[Output],
) -> list[TimeElements]:
    """:func:`time_elements` of each of many disjoint periods (the days of a year), at once.

    Gives the same elements as calling :func:`time_elements` per period with the same
    ``intervals`` (up to float rounding), in time linear in the number of intervals and windows:
    every time is cut into segments between consecutive window, interval and period edges, and
    each segment is attributed once.
    """
    if len(periods) != len(outputs):
        raise ValueError("one output per period")
    if not periods:
        return []
    runs = intervals if isinstance(intervals, StateRuns) else StateRuns.of(intervals)
    lo, hi, length, in_operation, in_down, period, inside, busy = _segments(
        tuple(operation_windows), tuple(down_windows), tuple(periods)
    )
    count = len(periods)

    def per_period(mask: npt.NDArray[np.bool_], amount: IntArray) -> npt.NDArray[np.float64]:
        total = np.bincount(period[mask], weights=amount[mask], minlength=count)
        return total / 1e6

    seconds = {
        state: per_period(busy, _state_time(runs, state, hi) - _state_time(runs, state, lo))
        for state in MachineState
    }
    failures = _failures_per_period(runs, lo[busy], hi[busy], period[busy], count)
    operation_s = per_period(in_operation & inside, length)
    down_s = per_period(in_down & inside, length)
    busy_s = per_period(busy, length)
    return [
        TimeElements(
            planned_operation_time=float(operation_s[i]),
            planned_down_time=float(down_s[i]),
            actual_production_time=float(seconds[MachineState.RUNNING][i]),
            actual_unit_setup_time=float(seconds[MachineState.SETUP][i]),
            actual_unit_delay_time=float(seconds[MachineState.IDLE][i]),
            actual_unit_down_time=float(
                seconds[MachineState.UNPLANNED_DOWN][i] + seconds[MachineState.OFFLINE][i]
            ),
            actual_order_execution_time=float(busy_s[i]),
            time_to_restoration=float(seconds[MachineState.UNPLANNED_DOWN][i]),
            produced_quantity=output.produced,
            good_quantity=output.good,
            scrap_quantity=output.scrap,
            rework_quantity=output.rework,
            planned_runtime_total=output.planned_runtime,
            failure_events=int(failures[i]),
            energy_kwh=output.energy_kwh,
        )
        for i, output in enumerate(outputs)
    ]


@functools.lru_cache(maxsize=16)
def _segments(
    operation_windows: tuple[tuple[datetime, datetime], ...],
    down_windows: tuple[tuple[datetime, datetime], ...],
    periods: tuple[tuple[datetime, datetime], ...],
) -> tuple[IntArray, IntArray, IntArray, BoolArray, BoolArray, IntArray, BoolArray, BoolArray]:
    """The calendar's segments of the periods, which every machine of a site shares: edges,
    lengths, and masks of operation, planned down, inside a period and busy (and its period).

    Cached, because a cluster's machines share a few calendars; callers must not modify them.
    """
    operation = _as_us(merge_windows(operation_windows))
    down = _as_us(merge_windows(down_windows))
    bounds = np.asarray([(epoch_us(a), epoch_us(b)) for a, b in periods], dtype=np.int64)
    points = np.unique(np.concatenate((operation.ravel(), down.ravel(), bounds.ravel())))
    lo, hi = points[:-1], points[1:]
    in_operation = _covered(operation, lo, hi)
    in_down = _covered(down, lo, hi) & in_operation
    period: IntArray = np.asarray(np.searchsorted(bounds[:, 0], lo, side="right") - 1, np.int64)
    inside: BoolArray = (period >= 0) & (lo < bounds[np.maximum(period, 0), 1])
    busy: BoolArray = in_operation & ~in_down & inside
    for array in (lo, hi, in_operation, in_down, period, inside, busy):
        array.flags.writeable = False
    length = hi - lo
    length.flags.writeable = False
    return lo, hi, length, in_operation, in_down, period, inside, busy


def _as_us(windows: Sequence[TimeWindow]) -> IntArray:
    return np.asarray(
        [(epoch_us(w.start), epoch_us(w.end)) for w in windows], dtype=np.int64
    ).reshape(-1, 2)


def _covered(windows: IntArray, lo: IntArray, hi: IntArray) -> npt.NDArray[np.bool_]:
    """Whether each segment lies in the (merged) windows; segments never straddle an edge."""
    if windows.size == 0:
        return np.zeros(lo.shape, dtype=bool)
    at = np.searchsorted(windows[:, 0], lo, side="right") - 1
    safe = np.maximum(at, 0)
    covered: npt.NDArray[np.bool_] = (at >= 0) & (hi <= windows[safe, 1])
    return covered


def _state_time(runs: StateRuns, state: MachineState, at: IntArray) -> IntArray:
    """Microseconds spent in ``state`` before each moment of ``at``."""
    mine = runs.codes == STATE_CODE[state.value]
    starts, lengths = runs.starts[mine], runs.ends[mine] - runs.starts[mine]
    if starts.size == 0:
        return np.zeros(at.shape, dtype=np.int64)
    before = np.concatenate(([0], np.cumsum(lengths)))
    j = np.searchsorted(starts, at, side="right") - 1
    safe = np.maximum(j, 0)
    partial = np.clip(at - starts[safe], 0, lengths[safe])
    result: IntArray = np.where(j >= 0, before[safe] + partial, 0)
    return result


def _failures_per_period(
    runs: StateRuns, lo: IntArray, hi: IntArray, period: IntArray, count: int
) -> IntArray:
    """Unplanned-down runs that begin inside a busy segment, per period."""
    starts = runs.starts[runs.codes == STATE_CODE[MachineState.UNPLANNED_DOWN.value]]
    if starts.size == 0 or lo.size == 0:
        return np.zeros(count, dtype=np.int64)
    at = np.searchsorted(lo, starts, side="right") - 1
    safe = np.maximum(at, 0)
    hit = (at >= 0) & (starts < hi[safe])
    counts: IntArray = np.bincount(period[safe][hit], minlength=count)
    return counts
