"""KPIs of machines and groups of machines, read from the telemetry store (the I/O side).

Everything computed here is composed of the pure modules: signals → ``states.derive_intervals``,
counters → ``counters.increments_per_window``, the site calendar → planned windows, and
``elements.time_elements`` → ``kpi.compute_kpis``. Groups are aggregated by summing time
elements, never by averaging ratios.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clusterbrain.devices.models import Device
from clusterbrain.platform.errors import InvalidInput
from clusterbrain.platform.models import Line, Machine, Site
from clusterbrain.platform.service import get_scoped, list_scoped, where_visible
from clusterbrain.platform.tenancy import Principal
from clusterbrain.production.calendar import (
    SiteCalendar,
    TimeWindow,
    periods_between,
    planned_down_windows,
    planned_operation_windows,
    shifts_between,
)
from clusterbrain.production.counters import increments_per_window
from clusterbrain.production.derived import (
    DERIVED_ENERGY,
    DERIVED_GOOD,
    DERIVED_SCRAP,
    DERIVED_STATE,
    stored_counts,
    stored_counts_many,
    stored_runs,
    stored_runs_many,
    tracked_at,
)
from clusterbrain.production.elements import Output, time_elements_by_period
from clusterbrain.production.kpi import KpiSet, TimeElements, compute_kpis, sum_elements
from clusterbrain.production.losses import LossStep, six_big_losses
from clusterbrain.production.models import MachineSettings, ProductionOrder
from clusterbrain.production.models import SiteCalendar as SiteCalendarRow
from clusterbrain.production.states import (
    SignalFrame,
    StateInterval,
    StateRules,
    StateRuns,
    derive_runs,
)
from clusterbrain.telemetry.store import TelemetryStore

DEFAULT_RULES = StateRules(state_tag="state")
MAX_RANGE = timedelta(days=400)
SOURCES = ("auto", "stored", "raw")
Source = Literal["auto", "stored", "raw"]
"""Where states and counts come from: ``stored`` reads the tracker's derived series and hourly
rollups, ``raw`` derives them from the raw points, ``auto`` uses the stored ones wherever the
tracker had covered the start of the range."""


@dataclass(frozen=True, slots=True)
class MachineSetup:
    """How one machine is read: its device, state rules, counters and ideal cycle time."""

    machine_id: int
    device_id: str | None
    rules: StateRules = DEFAULT_RULES
    ideal_cycle_time_s: float | None = None
    good_tag: str = "good_count"
    scrap_tag: str = "scrap_count"
    energy_tag: str = ""


@dataclass(frozen=True, slots=True)
class KpiResult:
    start: datetime
    end: datetime
    elements: TimeElements
    kpis: KpiSet
    intervals: list[StateInterval] = field(default_factory=list)

    @property
    def losses(self) -> list[LossStep]:
        """The six big losses, from planned busy time to fully productive time.

        Computed when asked for, from the elements: a year of days per machine rarely needs them,
        and building them for each day cost a quarter of the time of the KPIs themselves.
        """
        return six_big_losses(self.elements)


def check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("timestamps need a time zone", field="from")
    if end <= start:
        raise InvalidInput("'to' must be after 'from'", field="to")
    if end - start > MAX_RANGE:
        raise InvalidInput("at most 400 days per request", field="to")


# --- reading configuration ---------------------------------------------------------------------


def machine_setup(session: Session, machine: Machine) -> MachineSetup:
    settings = session.get(MachineSettings, machine.id)
    device_id = session.scalar(
        select(Device.id).where(Device.machine_id == machine.id).order_by(Device.id).limit(1)
    )
    return _setup_of(machine.id, settings, device_id)


def machine_setups(session: Session, machines: Sequence[Machine]) -> dict[int, MachineSetup]:
    """:func:`machine_setup` of many machines in two queries."""
    ids = [m.id for m in machines]
    settings = {
        s.machine_id: s
        for s in session.scalars(select(MachineSettings).where(MachineSettings.machine_id.in_(ids)))
    }
    first_device = {
        machine_id: device_id
        for machine_id, device_id in session.execute(
            select(Device.machine_id, func.min(Device.id))
            .where(Device.machine_id.in_(ids))
            .group_by(Device.machine_id)
        )
    }
    return {i: _setup_of(i, settings.get(i), first_device.get(i)) for i in ids}


def _setup_of(
    machine_id: int, settings: MachineSettings | None, device_id: str | None
) -> MachineSetup:
    if settings is None:
        return MachineSetup(machine_id, device_id)
    return MachineSetup(
        machine_id,
        settings.device_id or device_id,
        StateRules.from_dict(settings.state_rules) if settings.state_rules else DEFAULT_RULES,
        settings.ideal_cycle_time_s,
        settings.good_count_tag,
        settings.scrap_count_tag,
        settings.energy_tag,
    )


def site_calendar(session: Session, machine: Machine) -> SiteCalendar | None:
    line = session.get(Line, machine.line_id)
    if line is None:
        return None
    row = session.scalar(select(SiteCalendarRow).where(SiteCalendarRow.site_id == line.site_id))
    return SiteCalendar.model_validate(row.definition) if row is not None else None


def site_calendars(session: Session, machines: Sequence[Machine]) -> dict[int, SiteCalendar]:
    """:func:`site_calendar` of many machines in one query; machines without one are left out."""
    rows = session.execute(
        select(Machine.id, SiteCalendarRow.definition)
        .join(Line, Line.id == Machine.line_id)
        .join(SiteCalendarRow, SiteCalendarRow.site_id == Line.site_id)
        .where(Machine.id.in_([m.id for m in machines]))
    )
    return {machine_id: SiteCalendar.model_validate(d) for machine_id, d in rows}


def planned_windows(
    calendar: SiteCalendar | None, start: datetime, end: datetime
) -> tuple[list[TimeWindow], list[TimeWindow]]:
    """(operation, planned down) windows; without a calendar the machine is planned 24/7.

    Machines of one site share a calendar, so the windows of a range are computed once.
    """
    if calendar is None:
        return [TimeWindow(start, end)], []
    operation, down = _calendar_windows(calendar.model_dump_json(), start, end)
    return list(operation), list(down)


@functools.lru_cache(maxsize=32)
def _calendar_windows(
    definition: str, start: datetime, end: datetime
) -> tuple[tuple[TimeWindow, ...], tuple[TimeWindow, ...]]:
    calendar = SiteCalendar.model_validate_json(definition)
    return (
        tuple(planned_operation_windows(calendar, start, end)),
        tuple(planned_down_windows(calendar, start, end)),
    )


# --- reading signals ---------------------------------------------------------------------------


def state_intervals(
    store: TelemetryStore, setup: MachineSetup, start: datetime, end: datetime
) -> list[StateInterval]:
    """The machine's state intervals derived from the raw points."""
    return state_runs(store, setup, start, end).intervals()


def state_runs(
    store: TelemetryStore, setup: MachineSetup, start: datetime, end: datetime
) -> StateRuns:
    if setup.device_id is None:
        return derive_runs([], setup.rules, start, end)
    lookback = timedelta(seconds=setup.rules.offline_after_s or 3600)
    begin = start - lookback
    if setup.rules.state_tag is not None:
        table = store.query_text(setup.device_id, [setup.rules.state_tag], begin, end)
        values = table.column("text").to_pylist()
    else:
        table = store.query_range(setup.device_id, list(setup.rules.tags), begin, end)
        values = table.column("value").to_pylist()
    frame = SignalFrame.from_long(
        table.column("tag").to_pylist(),
        table.column("ts").to_numpy().astype("datetime64[us]"),
        values,
    )
    return derive_runs(frame, setup.rules, start, end)


def raw_counts(
    store: TelemetryStore, device_id: str, tag: str, windows: Sequence[tuple[datetime, datetime]]
) -> list[float]:
    """Counter increase in each window from the raw points, each step booked at its later sample
    (the reference for the tracker's stored counts)."""
    if not tag or not windows:
        return [0.0] * len(windows)
    begin = min(w[0] for w in windows)
    table = store.query_range(device_id, [tag], begin, max(w[1] for w in windows))
    ts = table.column("ts").to_numpy().astype("datetime64[us]")
    values = np.asarray(table.column("value").to_pylist(), dtype=float)
    before = store.last_before(device_id, [tag], begin)
    if before is not None and before.value is not None:
        ts = np.concatenate(([np.datetime64(before.ts.replace(tzinfo=None), "us")], ts))
        values = np.concatenate(([before.value], values))
    if ts.size < 2:
        return [0.0] * len(windows)
    return increments_per_window(ts, values, windows, gaps="next")


def machine_outputs(
    store: TelemetryStore,
    setup: MachineSetup,
    orders: Sequence[ProductionOrder],
    periods: Sequence[tuple[datetime, datetime]],
    stored: bool,
) -> list[Output]:
    """Good, scrap and energy per period; ideal time from the orders, else the default."""
    if setup.device_id is None:
        return [Output() for _ in periods]
    device = setup.device_id
    pieces = _output_pieces(orders, periods)
    windows = [w for _, w, _ in pieces]
    if stored:
        counts = stored_counts(store, device, _derived_tags(setup), [*windows, *periods])
        return _outputs_from_stored(setup, pieces, periods, counts)
    good = raw_counts(store, device, setup.good_tag, windows)
    scrap = raw_counts(store, device, setup.scrap_tag, windows)
    energy = raw_counts(store, device, setup.energy_tag, periods)
    return _outputs(setup, pieces, good, scrap, energy)


_Piece = tuple[int, tuple[datetime, datetime], float | None]


def _output_pieces(
    orders: Sequence[ProductionOrder], periods: Sequence[tuple[datetime, datetime]]
) -> list[_Piece]:
    """Each period cut at order boundaries: (period index, window, ideal seconds per unit)."""
    return [
        (i, window, rate)
        for i, p in enumerate(periods)
        for window, rate in _order_windows(orders, *p)
    ]


def _derived_tags(setup: MachineSetup) -> list[str]:
    roles = {DERIVED_GOOD: setup.good_tag, DERIVED_SCRAP: setup.scrap_tag}
    roles[DERIVED_ENERGY] = setup.energy_tag
    return [derived for derived, tag in roles.items() if tag]


def _outputs_from_stored(
    setup: MachineSetup,
    pieces: Sequence[_Piece],
    periods: Sequence[tuple[datetime, datetime]],
    counts: dict[str, list[float]],
) -> list[Output]:
    """Outputs from the stored counts of the pieces' windows followed by the periods."""
    split = len(pieces)
    zeros = [0.0] * (split + len(periods))
    good = counts.get(DERIVED_GOOD, zeros)[:split] if setup.good_tag else zeros[:split]
    scrap = counts.get(DERIVED_SCRAP, zeros)[:split] if setup.scrap_tag else zeros[:split]
    energy = counts.get(DERIVED_ENERGY, zeros)[split:] if setup.energy_tag else zeros[split:]
    return _outputs(setup, pieces, good, scrap, energy)


def _outputs(
    setup: MachineSetup,
    pieces: Sequence[_Piece],
    good: Sequence[float],
    scrap: Sequence[float],
    energy: Sequence[float],
) -> list[Output]:
    totals = [[0.0, 0.0, 0.0] for _ in energy]
    for (i, _, rate), g, sc in zip(pieces, good, scrap, strict=True):
        per_unit = rate if rate is not None else _default_per_unit(setup)
        totals[i][0] += g
        totals[i][1] += sc
        totals[i][2] += (g + sc) * per_unit
    return [
        Output(good=g, scrap=sc, planned_runtime=ideal, energy_kwh=e)
        for (g, sc, ideal), e in zip(totals, energy, strict=True)
    ]


def _default_per_unit(setup: MachineSetup) -> float:
    return setup.ideal_cycle_time_s or 0.0


def _order_windows(
    orders: Sequence[ProductionOrder], start: datetime, end: datetime
) -> list[tuple[tuple[datetime, datetime], float | None]]:
    """The window cut at order boundaries, each piece with its ideal seconds per unit."""
    if not orders:
        return [((start, end), None)]
    pieces: list[tuple[tuple[datetime, datetime], float | None]] = []
    cursor = start
    for order in sorted(orders, key=lambda o: o.planned_start):
        lo, hi = max(order.planned_start, start), min(order.planned_end, end)
        if hi <= lo or lo < cursor:
            continue
        if lo > cursor:
            pieces.append(((cursor, lo), None))
        pieces.append(((lo, hi), order.ideal_cycle_time_s / order.units_per_cycle))
        cursor = hi
    if cursor < end:
        pieces.append(((cursor, end), None))
    return pieces


PERIODS = ("total", "shift", "day", "week", "month")


def period_windows(
    calendar: SiteCalendar, period: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The reporting periods of ``[start, end)``: shifts, production days, weeks or months."""
    if period == "total":
        return [(start, end)]
    if period == "shift":
        return [(s.start_utc, s.end_utc) for s in shifts_between(calendar, start, end)]
    if period in ("day", "week", "month"):
        return [(w.start, w.end) for w in periods_between(calendar, period, start, end)]  # type: ignore[arg-type]
    raise InvalidInput(f"period must be one of {', '.join(PERIODS)}", field="period")


def machine_kpis_by_period(
    session: Session,
    store: TelemetryStore,
    principal: Principal,
    machine_id: int,
    start: datetime,
    end: datetime,
    period: str,
    default_timezone: str = "Asia/Shanghai",
    source: Source = "auto",
) -> tuple[SiteCalendar, list[KpiResult]]:
    """One KPI result per period; periods use the site's calendar (or its default zone)."""
    check_range(start, end)
    machine = get_scoped(session, Machine, machine_id, principal)
    calendar = site_calendar(session, machine) or SiteCalendar(timezone=default_timezone)
    periods = period_windows(calendar, period, start, end)
    elements, _ = machine_period_elements(session, store, machine, periods, source)
    results = [
        KpiResult(lo, hi, e, compute_kpis(e)) for (lo, hi), e in zip(periods, elements, strict=True)
    ]
    return calendar, results


# --- use cases ----------------------------------------------------------------------------------


def machine_kpis(
    session: Session,
    store: TelemetryStore,
    principal: Principal,
    machine_id: int,
    start: datetime,
    end: datetime,
    *,
    with_intervals: bool = False,
    source: Source = "auto",
) -> KpiResult:
    check_range(start, end)
    machine = get_scoped(session, Machine, machine_id, principal)
    elements, runs = machine_period_elements(session, store, machine, [(start, end)], source)
    return KpiResult(
        start,
        end,
        elements[0],
        compute_kpis(elements[0]),
        runs.intervals() if with_intervals else [],
    )


def uses_stored(
    store: TelemetryStore, setup: MachineSetup, start: datetime, source: Source
) -> bool:
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}", field="source")
    if source == "auto":
        return tracked_at(store, setup.device_id, start)
    return source == "stored"


def machine_runs(
    store: TelemetryStore, setup: MachineSetup, start: datetime, end: datetime, stored: bool
) -> StateRuns:
    """The machine's states in ``[start, end)``, stored or derived from the raw points."""
    if stored and setup.device_id is not None:
        return stored_runs(store, setup.device_id, setup.rules, start, end)
    return state_runs(store, setup, start, end)


def machine_period_elements(
    session: Session,
    store: TelemetryStore,
    machine: Machine,
    periods: Sequence[tuple[datetime, datetime]],
    source: Source = "auto",
    now: datetime | None = None,
) -> tuple[list[TimeElements], StateRuns]:
    """Time elements of one machine in each of ``periods`` (disjoint, in time order), with the
    state intervals of the whole span; states and counts are read once for all periods.

    Planned time counts only until ``now`` (default: the clock), so a shift in progress is
    measured on the part that has passed, not charged with the rest as lost time.
    """
    start, end = periods[0][0], periods[-1][1]
    setup = machine_setup(session, machine)
    stored = uses_stored(store, setup, start, source)
    passed = min(end, now or datetime.now(UTC))
    operation, down = (
        planned_windows(site_calendar(session, machine), start, passed)
        if passed > start
        else ([], [])
    )
    runs = machine_runs(store, setup, start, end, stored)
    orders = session.scalars(
        select(ProductionOrder).where(
            ProductionOrder.machine_id == machine.id,
            ProductionOrder.planned_end > start,
            ProductionOrder.planned_start < end,
        )
    ).all()
    outputs = machine_outputs(store, setup, orders, periods, stored)
    return time_elements_by_period(runs, operation, down, periods, outputs), runs


def machines_kpis_by_period(
    session: Session,
    store: TelemetryStore,
    principal: Principal,
    machine_ids: Sequence[int],
    start: datetime,
    end: datetime,
    period: str,
    default_timezone: str = "Asia/Shanghai",
    source: Source = "auto",
) -> dict[int, list[KpiResult]]:
    """:func:`machine_kpis_by_period` of many machines (a year of days of a whole cluster), with
    the same results: the stored states and counts of all machines are read in one query each."""
    check_range(start, end)
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}", field="source")
    machines = scoped_machines(session, principal, machine_ids)
    calendars = site_calendars(session, machines)
    windows: dict[str, list[tuple[datetime, datetime]]] = {}
    periods = {}
    for machine in machines:
        calendar = calendars.get(machine.id) or SiteCalendar(timezone=default_timezone)
        key = calendar.model_dump_json()
        if key not in windows:
            windows[key] = period_windows(calendar, period, start, end)
        periods[machine.id] = windows[key]
    elements = machines_period_elements(session, store, machines, periods, source)
    return {
        machine.id: [
            KpiResult(lo, hi, e, compute_kpis(e))
            for (lo, hi), e in zip(periods[machine.id], elements[machine.id], strict=True)
        ]
        for machine in machines
    }


def scoped_machines(
    session: Session, principal: Principal, machine_ids: Sequence[int]
) -> list[Machine]:
    """The machines of ``machine_ids`` in that order; any the caller cannot see is not found."""
    query = where_visible(
        select(Machine).where(Machine.id.in_(list(machine_ids))), Machine.enterprise_id, principal
    )
    found = {m.id: m for m in session.scalars(query)}
    return [found.get(i) or get_scoped(session, Machine, i, principal) for i in machine_ids]


def machines_period_elements(
    session: Session,
    store: TelemetryStore,
    machines: Sequence[Machine],
    periods: dict[int, list[tuple[datetime, datetime]]],
    source: Source = "auto",
    now: datetime | None = None,
) -> dict[int, list[TimeElements]]:
    """:func:`machine_period_elements` of many machines, each with its own periods.

    Machines read from the stored series are read together: their state changes, their hourly
    counts and their orders in one query each. The others (raw points, no device, a device
    shared with another machine) go one by one.
    """
    setups = machine_setups(session, machines)
    spans = {m.id: (periods[m.id][0][0], periods[m.id][-1][1]) for m in machines}
    stored = _stored_machines(store, setups, spans, source)
    result = {}
    for machine in machines:
        if machine.id not in stored:
            result[machine.id], _ = machine_period_elements(
                session, store, machine, periods[machine.id], source, now
            )
    if not stored:
        return result
    calendars = site_calendars(session, [m for m in machines if m.id in stored])
    lo = min(spans[i][0] for i in stored)
    hi = max(spans[i][1] for i in stored)
    orders: dict[int, list[ProductionOrder]] = {}
    for order in session.scalars(
        select(ProductionOrder).where(
            ProductionOrder.machine_id.in_(sorted(stored)),
            ProductionOrder.planned_end > lo,
            ProductionOrder.planned_start < hi,
        )
    ):
        orders.setdefault(order.machine_id, []).append(order)
    groups: dict[tuple[datetime, datetime], list[int]] = {}
    for machine_id in sorted(stored):
        groups.setdefault(spans[machine_id], []).append(machine_id)
    clock = now or datetime.now(UTC)
    for (start, end), ids in groups.items():
        devices = {i: str(setups[i].device_id) for i in ids}
        runs = stored_runs_many(store, {devices[i]: setups[i].rules for i in ids}, start, end)
        pieces = {}
        for i in ids:
            mine = [o for o in orders.get(i, []) if o.planned_end > start and o.planned_start < end]
            pieces[i] = _output_pieces(mine, periods[i])
        tags = sorted({tag for i in ids for tag in _derived_tags(setups[i])})
        counts = stored_counts_many(
            store,
            tags,
            {devices[i]: [*(w for _, w, _ in pieces[i]), *periods[i]] for i in ids},
        )
        passed = min(end, clock)
        for i in ids:
            operation, down = (
                planned_windows(calendars.get(i), start, passed) if passed > start else ([], [])
            )
            outputs = _outputs_from_stored(setups[i], pieces[i], periods[i], counts[devices[i]])
            result[i] = time_elements_by_period(
                runs[devices[i]], operation, down, periods[i], outputs
            )
    return result


def _stored_machines(
    store: TelemetryStore,
    setups: dict[int, MachineSetup],
    spans: dict[int, tuple[datetime, datetime]],
    source: Source,
) -> set[int]:
    """The machines to read from the stored series (see :func:`uses_stored`), each device once."""
    if source == "raw":
        return set()
    users: dict[str, list[int]] = {}
    for machine_id, setup in setups.items():
        if setup.device_id is not None:
            users.setdefault(setup.device_id, []).append(machine_id)
    single = {ids[0]: device for device, ids in users.items() if len(ids) == 1}
    if source == "stored":
        return set(single)
    chosen: set[int] = set()
    by_start: dict[datetime, list[int]] = {}
    for machine_id in single:
        by_start.setdefault(spans[machine_id][0], []).append(machine_id)
    for start, ids in by_start.items():
        tracked = store.last_before_many(
            [single[i] for i in ids], [DERIVED_STATE], start + timedelta(microseconds=1)
        )
        chosen.update(i for i in ids if single[i] in tracked)
    return chosen


def group_kpis(
    session: Session,
    store: TelemetryStore,
    principal: Principal,
    start: datetime,
    end: datetime,
    *,
    line_id: int | None = None,
    site_id: int | None = None,
) -> tuple[KpiResult, dict[int, TimeElements]]:
    """KPIs of every visible machine (optionally of one line or site), from summed elements."""
    check_range(start, end)
    machines = machines_in_scope(session, principal, line_id, site_id)
    found = machines_period_elements(
        session, store, machines, {m.id: [(start, end)] for m in machines}
    )
    per_machine = {m.id: found[m.id][0] for m in machines}
    total = sum_elements(per_machine.values())
    return KpiResult(start, end, total, compute_kpis(total)), per_machine


def machines_in_scope(
    session: Session, principal: Principal, line_id: int | None, site_id: int | None
) -> list[Machine]:
    machines = list(list_scoped(session, Machine, principal))
    if line_id is not None:
        get_scoped(session, Line, line_id, principal)
        machines = [m for m in machines if m.line_id == line_id]
    if site_id is not None:
        get_scoped(session, Site, site_id, principal)
        lines = {
            line.id for line in list_scoped(session, Line, principal) if line.site_id == site_id
        }
        machines = [m for m in machines if m.line_id in lines]
    return machines
