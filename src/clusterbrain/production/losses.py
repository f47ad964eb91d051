"""The six big losses as a waterfall from planned busy time to fully productive time.

Mapping to ISO 22400-2 elements (seconds; see docs/kpis.md for the reasoning):

============================  ================================================================
step                          seconds lost
============================  ================================================================
breakdowns                    TTR, the failure-caused down time (inside ADET + ADOT)
setup_and_adjustments         AUST
small_stops_and_idling        PBT - APT - TTR - AUST + small_stop_time: the rest of ADET and
                              ADOT (minor stoppages, waiting, no order), any planned busy time
                              with no recorded state, plus micro-stops hidden inside APT
reduced_speed                 APT - small_stop_time - PRU x PQ
process_defects               average PRU x (PQ - GQ - startup_reject_quantity)
reduced_yield                 average PRU x startup_reject_quantity
============================  ================================================================

The remaining time after the last step is fully productive time, PRU x PQ x GQ / PQ = OEE x PBT.
Each remaining value is computed from its own elements and each loss is the difference of two
neighbours, so the losses always add up to PBT minus fully productive time. Nothing is clamped:
with inconsistent elements (see ``TimeElements.consistency_issues``) a loss can come out
negative, which shows the error instead of hiding it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from clusterbrain.production.kpi import TimeElements, fully_productive_time

BREAKDOWNS = "breakdowns"
SETUP_AND_ADJUSTMENTS = "setup_and_adjustments"
SMALL_STOPS_AND_IDLING = "small_stops_and_idling"
REDUCED_SPEED = "reduced_speed"
PROCESS_DEFECTS = "process_defects"
REDUCED_YIELD = "reduced_yield"

SIX_BIG_LOSSES = (
    BREAKDOWNS,
    SETUP_AND_ADJUSTMENTS,
    SMALL_STOPS_AND_IDLING,
    REDUCED_SPEED,
    PROCESS_DEFECTS,
    REDUCED_YIELD,
)


class LossStep(NamedTuple):
    """One bar of the waterfall: the loss, and the time left after it (seconds)."""

    name: str
    seconds_lost: float
    remaining_after: float


def six_big_losses(
    e: TimeElements, *, small_stop_time: float = 0.0, startup_reject_quantity: float = 0.0
) -> list[LossStep]:
    """The six big losses, in order, from planned busy time down to fully productive time.

    small_stop_time: seconds of micro-stops that the machine states counted as production (too
    short to be recorded as ADET); moved from reduced speed to small stops. At most APT.
    startup_reject_quantity: units scrapped or reworked while starting up or ramping up after a
    setup; a part of PQ - GQ, moved from process defects to reduced yield.

    >>> e = TimeElements(
    ...     planned_operation_time=480, actual_production_time=420, actual_unit_delay_time=60,
    ...     planned_runtime_total=400, produced_quantity=400, good_quantity=380,
    ... )
    >>> [(s.name, round(s.seconds_lost), round(s.remaining_after)) for s in six_big_losses(e)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('breakdowns', 0, 480), ('setup_and_adjustments', 0, 480),
     ('small_stops_and_idling', 60, 420), ('reduced_speed', 20, 400),
     ('process_defects', 20, 380), ('reduced_yield', 0, 380)]
    """
    _check_extra_inputs(e, small_stop_time, startup_reject_quantity)
    remaining = _remaining_after_each_step(e, small_stop_time, startup_reject_quantity)
    before = (e.planned_busy_time, *remaining[:-1])
    return [
        LossStep(name, start - end, end)
        for name, start, end in zip(SIX_BIG_LOSSES, before, remaining, strict=True)
    ]


def _remaining_after_each_step(
    e: TimeElements, small_stop_time: float, startup_reject_quantity: float
) -> tuple[float, ...]:
    after_breakdowns = e.planned_busy_time - e.time_to_restoration
    fully_productive = fully_productive_time(e)
    value_per_unit = e.planned_runtime_per_unit or 0.0
    return (
        after_breakdowns,
        after_breakdowns - e.actual_unit_setup_time,
        e.actual_production_time - small_stop_time,
        e.planned_runtime_total,
        fully_productive + value_per_unit * startup_reject_quantity,
        fully_productive,
    )


def _check_extra_inputs(
    e: TimeElements, small_stop_time: float, startup_reject_quantity: float
) -> None:
    for name, value in (
        ("small_stop_time", small_stop_time),
        ("startup_reject_quantity", startup_reject_quantity),
    ):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if small_stop_time > e.actual_production_time:
        raise ValueError("small_stop_time is part of APT and cannot exceed it")
    if startup_reject_quantity > e.produced_quantity - e.good_quantity:
        raise ValueError("startup_reject_quantity is part of PQ - GQ and cannot exceed it")
