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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from clusterbrain.production.calendar import (
    TimeWindow,
    clip_windows,
    intersect_windows,
    subtract_windows,
    total_seconds,
)
from clusterbrain.production.kpi import TimeElements
from clusterbrain.production.states import MachineState, StateInterval, durations_in_windows


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
