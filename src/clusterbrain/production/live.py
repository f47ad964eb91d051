"""What the shop floor is doing now: each machine's state, and the KPIs of this shift and day.

Use cases for live views (the console's overview). States come from the newest values of every
visible machine in one store read; KPIs of the current shift and production day are summed from
machine time elements per line, site and enterprise, never averaged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from clusterbrain.platform.models import Line, Machine, Site
from clusterbrain.platform.service import list_scoped
from clusterbrain.platform.tenancy import Principal
from clusterbrain.production.calendar import SiteCalendar, TimeWindow, period_bounds, shifts_between
from clusterbrain.production.derived import DERIVED_STATE
from clusterbrain.production.kpi import TimeElements, sum_elements
from clusterbrain.production.oee_service import (
    MachineSetup,
    machine_period_elements,
    machine_setups,
    site_calendar,
)
from clusterbrain.production.states import MachineState, SignalFrame, StateRules, sample_states
from clusterbrain.telemetry.store import LatestValue, TelemetryStore

_STATE_NAMES = frozenset(state.value for state in MachineState)


@dataclass(frozen=True, slots=True)
class MachineStatus:
    machine_id: int
    name: str
    kind: str
    line_id: int
    state: MachineState
    since: datetime | None
    last_seen: datetime | None
    cycle_time_s: float | None
    values: dict[str, float | str | None]


@dataclass(frozen=True, slots=True)
class Watched:
    """A machine as a live view reads it (kept by the view between refreshes)."""

    machine_id: int
    name: str
    kind: str
    line_id: int
    setup: MachineSetup


def watched_machines(session: Session, principal: Principal) -> list[Watched]:
    """Every visible machine with how it is read, by line and name."""
    machines = sorted(list_scoped(session, Machine, principal), key=lambda m: (m.line_id, m.name))
    setups = machine_setups(session, machines)
    return [Watched(m.id, m.name, m.kind, m.line_id, setups[m.id]) for m in machines]


def machine_statuses(
    store: TelemetryStore, machines: Sequence[Watched], now: datetime
) -> list[MachineStatus]:
    """Each machine's state now, from one read of the newest values of all their devices."""
    devices = [m.setup.device_id for m in machines if m.setup.device_id]
    newest: dict[str, dict[str, LatestValue]] = defaultdict(dict)
    for value in store.latest_many(devices):
        newest[value.device_id][value.tag] = value
    return [_status(m, newest.get(m.setup.device_id or "", {}), now) for m in machines]


def _status(machine: Watched, latest: dict[str, LatestValue], now: datetime) -> MachineStatus:
    setup = machine.setup
    rule_values = [latest[tag] for tag in setup.rules.tags if tag in latest]
    last_seen = max((v.ts for v in rule_values), default=None)
    values = {
        tag: (v.text if v.value is None else v.value)
        for tag, v in latest.items()
        if not tag.startswith("$")
    }
    cycle = latest.get("cycle_time")
    state, since = _state_now(setup, latest, rule_values)
    hold = setup.rules.offline_after_s
    if last_seen is None or (hold is not None and now - last_seen > timedelta(seconds=hold)):
        state = MachineState.OFFLINE
        since = None if last_seen is None else last_seen + timedelta(seconds=hold or 0)
    return MachineStatus(
        machine.machine_id,
        machine.name,
        machine.kind,
        machine.line_id,
        state,
        since,
        last_seen,
        cycle.value if cycle is not None else None,
        values,
    )


def _state_now(
    setup: MachineSetup, latest: dict[str, LatestValue], rule_values: list[LatestValue]
) -> tuple[MachineState, datetime | None]:
    """The state of the newest values, with the tracker's newest change as its start.

    The tracker folds stored batches behind ingest and, on a busy machine, can run seconds behind
    the newest values; a live view shows the state those values give at once, and its start
    only when the tracker has recorded the same state (else unknown until it catches up).
    """
    tracked = latest.get(DERIVED_STATE)
    since = tracked.ts if tracked is not None else None
    recorded = (
        MachineState(tracked.text)
        if tracked is not None and tracked.text is not None and tracked.text in _STATE_NAMES
        else None
    )
    if not rule_values:
        return (MachineState.OFFLINE, None) if recorded is None else (recorded, since)
    newest = max(v.ts for v in rule_values)
    if recorded is not None and since is not None and since >= newest:
        return recorded, since
    state = _reported_state(setup.rules, latest)
    if state is None:
        frame = SignalFrame.from_rows(
            [(newest, {v.tag: (v.text if v.value is None else v.value) for v in rule_values})],
            setup.rules.tags,
        )
        state = sample_states(frame, setup.rules)[-1]
    return state, since if state is recorded else None


def _reported_state(rules: StateRules, latest: dict[str, LatestValue]) -> MachineState | None:
    """A state the machine reports by its name, unmapped (the common case, read without numpy);
    None where the rules have to decide."""
    if rules.state_tag is None:
        return None
    reported = latest.get(rules.state_tag)
    text = reported.text if reported is not None else None
    if text is None or text not in _STATE_NAMES or text in rules.map:
        return None
    return MachineState(text)


@dataclass(frozen=True, slots=True)
class ScopeKpis:
    """Time elements of the current shift and production day, per enterprise, site and line."""

    shift: dict[str, TimeElements]
    day: dict[str, TimeElements]
    names: dict[str, str]


def scope_kpis(
    session: Session, store: TelemetryStore, principal: Principal, now: datetime
) -> ScopeKpis:
    """Keys: ``enterprise``, ``site:<id>``, ``line:<id>``; windows from each site's calendar.

    Both windows end now, so each machine is read once over the longer one, cut where the
    shorter one starts; the elements of a window are the sums of its pieces (all additive).
    """
    machines = list_scoped(session, Machine, principal)
    lines = {line.id: line for line in list_scoped(session, Line, principal)}
    sites = {site.id: site for site in list_scoped(session, Site, principal)}
    shift: dict[str, list[TimeElements]] = defaultdict(list)
    day: dict[str, list[TimeElements]] = defaultdict(list)
    for machine in machines:
        line = lines.get(machine.line_id)
        keys = ["enterprise", f"line:{machine.line_id}"] + (
            [f"site:{line.site_id}"] if line else []
        )
        calendar = site_calendar(session, machine) or SiteCalendar()
        windows = [
            (window.start, into)
            for window, into in ((current_shift(calendar, now), shift), (today(calendar, now), day))
            if window is not None and window.start < now
        ]
        if not windows:
            continue
        starts = sorted({start for start, _ in windows})
        pieces = list(zip(starts, [*starts[1:], now], strict=True))
        # one read of the machine for both windows: each is the sum of the pieces it covers
        elements = machine_period_elements(session, store, machine, pieces, now=now)[0]
        for start, into in windows:
            covered = sum_elements(
                e for (a, _), e in zip(pieces, elements, strict=True) if a >= start
            )
            for key in keys:
                into[key].append(covered)
    names = {f"line:{i}": line.name for i, line in lines.items()}
    names.update({f"site:{i}": site.name for i, site in sites.items()})
    return ScopeKpis(
        {k: sum_elements(v) for k, v in shift.items()},
        {k: sum_elements(v) for k, v in day.items()},
        names,
    )


def current_shift(calendar: SiteCalendar, now: datetime) -> TimeWindow | None:
    for shift in shifts_between(calendar, now - timedelta(hours=26), now + timedelta(seconds=1)):
        if shift.start_utc <= now < shift.end_utc:
            return TimeWindow(shift.start_utc, shift.end_utc)
    return None


def today(calendar: SiteCalendar, now: datetime) -> TimeWindow:
    return period_bounds(calendar, "day", now)
