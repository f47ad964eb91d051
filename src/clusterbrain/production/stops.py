"""Stops that wait for a downtime reason, and the Pareto of losses by reason (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from clusterbrain.production.states import MachineState, StateInterval

REASON_STATES = frozenset({MachineState.UNPLANNED_DOWN, MachineState.IDLE, MachineState.SETUP})
"""Losses an operator can explain; planned stops and offline time are not asked about."""
AWAITING = "awaiting_reason"


@dataclass(frozen=True, slots=True)
class Stop:
    machine_id: int
    state: MachineState
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class ParetoRow:
    reason: str
    seconds: float
    stops: int
    share: float
    cumulative_share: float


def stops_of(
    machine_id: int, intervals: Iterable[StateInterval], min_duration_s: float
) -> list[Stop]:
    """Loss intervals at least ``min_duration_s`` long: the ones that need a reason.

    >>> from datetime import UTC, timedelta
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> ivs = [StateInterval(MachineState.RUNNING, t, t + timedelta(minutes=5)),
    ...        StateInterval(MachineState.UNPLANNED_DOWN, t + timedelta(minutes=5), t + timedelta(minutes=20)),
    ...        StateInterval(MachineState.IDLE, t + timedelta(minutes=20), t + timedelta(minutes=21))]
    >>> [(s.state.value, s.seconds) for s in stops_of(7, ivs, 300)]
    [('unplanned_down', 900.0)]
    """
    return [
        Stop(machine_id, i.state, i.start, i.end)
        for i in intervals
        if i.state in REASON_STATES and i.seconds >= min_duration_s
    ]


def pareto(stops: Sequence[Stop], reasons: Mapping[tuple[int, datetime], str]) -> list[ParetoRow]:
    """Seconds lost per reason, largest first, with shares; unexplained stops are their own row.

    >>> from datetime import UTC, timedelta
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> s = [Stop(1, MachineState.UNPLANNED_DOWN, t, t + timedelta(seconds=600)),
    ...      Stop(1, MachineState.SETUP, t + timedelta(hours=1), t + timedelta(hours=1, seconds=200)),
    ...      Stop(2, MachineState.IDLE, t, t + timedelta(seconds=200))]
    >>> [(r.reason, r.seconds, round(r.cumulative_share, 2)) for r in pareto(s, {(1, t): "BRK.MECH"})]
    [('BRK.MECH', 600.0, 0.6), ('awaiting_reason', 400.0, 1.0)]
    """
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for stop in stops:
        reason = reasons.get((stop.machine_id, stop.start), AWAITING)
        seconds[reason] = seconds.get(reason, 0.0) + stop.seconds
        counts[reason] = counts.get(reason, 0) + 1
    total = sum(seconds.values())
    rows: list[ParetoRow] = []
    running = 0.0
    for reason, lost in sorted(seconds.items(), key=lambda item: (-item[1], item[0])):
        running += lost
        rows.append(
            ParetoRow(
                reason,
                lost,
                counts[reason],
                lost / total if total else 0.0,
                running / total if total else 0.0,
            )
        )
    return rows
