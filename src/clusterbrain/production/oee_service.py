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
from sqlalchemy import select
from sqlalchemy.orm import Session

from clusterbrain.devices.models import Device
from clusterbrain.platform.errors import InvalidInput
from clusterbrain.platform.models import Line, Machine, Site
from clusterbrain.platform.service import get_scoped, list_scoped
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
    stored_counts,
    stored_runs,
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
    losses: list[LossStep]
    intervals: list[StateInterval] = field(default_factory=list)


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
    return _setup(machine.id, settings, device_id)


def machine_setups(session: Session, machines: Sequence[Machine]) -> dict[int, MachineSetup]:
    """:func:`machine_setup` of many machines in two queries (a live view of hundreds)."""
    ids = [m.id for m in machines]
    settings = {
        row.machine_id: row
        for row in session.scalars(
            select(MachineSettings).where(MachineSettings.machine_id.in_(ids))
        )
    }
    devices: dict[int | None, str] = {}
    for machine_id, device_id in session.execute(
        select(Device.machine_id, Device.id).where(Device.machine_id.in_(ids)).order_by(Device.id)
    ):
        devices.setdefault(machine_id, device_id)
    return {i: _setup(i, settings.get(i), devices.get(i)) for i in ids}


def _setup(
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
    pieces = [
        (i, window, rate)
        for i, p in enumerate(periods)
        for window, rate in _order_windows(orders, *p)
    ]
    windows = [w for _, w, _ in pieces]
    roles = {"good": setup.good_tag, "scrap": setup.scrap_tag, "energy": setup.energy_tag}
    if stored:
        derived = {"good": DERIVED_GOOD, "scrap": DERIVED_SCRAP, "energy": DERIVED_ENERGY}
        tags = [derived[role] for role, tag in roles.items() if tag]
        counts = stored_counts(store, device, tags, [*windows, *periods])
        split = len(windows)
        good = counts.get(DERIVED_GOOD, [0.0] * (split + len(periods)))[:split]
        scrap = counts.get(DERIVED_SCRAP, [0.0] * (split + len(periods)))[:split]
        energy = counts.get(DERIVED_ENERGY, [0.0] * (split + len(periods)))[split:]
    else:
        good = raw_counts(store, device, setup.good_tag, windows)
        scrap = raw_counts(store, device, setup.scrap_tag, windows)
        energy = raw_counts(store, device, setup.energy_tag, periods)
    totals = [[0.0, 0.0, 0.0] for _ in periods]
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
        KpiResult(lo, hi, e, compute_kpis(e), six_big_losses(e))
        for (lo, hi), e in zip(periods, elements, strict=True)
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
        six_big_losses(elements[0]),
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
    per_machine = {
        m.id: machine_period_elements(session, store, m, [(start, end)])[0][0] for m in machines
    }
    total = sum_elements(per_machine.values())
    return KpiResult(start, end, total, compute_kpis(total), six_big_losses(total)), per_machine


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
