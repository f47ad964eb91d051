"""Stops waiting for a reason, reasons assigned by operators, and the Pareto of losses."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clusterbrain.platform.errors import Conflict, NotFound
from clusterbrain.platform.models import Machine, Role
from clusterbrain.platform.service import get_scoped
from clusterbrain.platform.tenancy import Principal
from clusterbrain.production.models import DowntimeReason, StopReason
from clusterbrain.production.oee_service import (
    check_range,
    machine_setup,
    machines_in_scope,
    state_intervals,
)
from clusterbrain.production.stops import ParetoRow, Stop, pareto, stops_of
from clusterbrain.telemetry.store import TelemetryStore

DEFAULT_MIN_STOP_S = 300.0
ASSIGN_ROLES = frozenset({Role.PLATFORM_ADMIN, Role.ENTERPRISE_ADMIN, Role.ENGINEER, Role.OPERATOR})


def _stops(
    session: Session,
    store: TelemetryStore,
    machine: Machine,
    start: datetime,
    end: datetime,
    min_duration_s: float,
) -> list[Stop]:
    intervals = state_intervals(store, machine_setup(session, machine), start, end)
    return stops_of(machine.id, intervals, min_duration_s)


def _assigned(
    session: Session, machine_ids: list[int], start: datetime, end: datetime
) -> dict[tuple[int, datetime], StopReason]:
    rows = session.scalars(
        select(StopReason).where(
            StopReason.machine_id.in_(machine_ids),
            StopReason.stop_start >= start - timedelta(days=1),
            StopReason.stop_start < end,
        )
    ).all()
    return {(row.machine_id, row.stop_start): row for row in rows}


def machine_stops(
    session: Session,
    store: TelemetryStore,
    principal: Principal,
    machine_id: int,
    start: datetime,
    end: datetime,
    min_duration_s: float = DEFAULT_MIN_STOP_S,
) -> list[tuple[Stop, StopReason | None]]:
    check_range(start, end)
    machine = get_scoped(session, Machine, machine_id, principal)
    stops = _stops(session, store, machine, start, end, min_duration_s)
    assigned = _assigned(session, [machine.id], start, end)
    return [(stop, assigned.get((stop.machine_id, stop.start))) for stop in stops]


def assign_reason(
    session: Session,
    store: TelemetryStore,
    principal: Principal,
    machine_id: int,
    stop_start: datetime,
    reason_id: int,
    comment: str = "",
) -> StopReason:
    """Record why a machine stopped; the stop must exist in the machine's states."""
    principal.require(ASSIGN_ROLES, "assign downtime reasons")
    machine = get_scoped(session, Machine, machine_id, principal)
    reason = session.get(DowntimeReason, reason_id)
    if reason is None or reason.enterprise_id != machine.enterprise_id or not reason.active:
        raise NotFound(f"downtime reason {reason_id} not found", field="reason_id")
    window = (stop_start - timedelta(hours=1), stop_start + timedelta(days=2))
    stop = next(
        (s for s in _stops(session, store, machine, *window, 0.0) if s.start == stop_start), None
    )
    if stop is None:
        raise NotFound(
            f"machine {machine_id} has no stop starting at {stop_start.isoformat()}", field="start"
        )
    row = session.scalar(
        select(StopReason).where(
            StopReason.machine_id == machine.id, StopReason.stop_start == stop_start
        )
    )
    if row is None:
        row = StopReason(
            enterprise_id=machine.enterprise_id, machine_id=machine.id, stop_start=stop_start
        )
        session.add(row)
    row.stop_end = stop.end
    row.reason_id = reason.id
    row.comment = comment
    row.assigned_by = principal.user_id
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("the stop was given a reason at the same moment; reload") from exc
    return row


def downtime_pareto(
    session: Session,
    store: TelemetryStore,
    principal: Principal,
    start: datetime,
    end: datetime,
    *,
    min_duration_s: float = DEFAULT_MIN_STOP_S,
    line_id: int | None = None,
    site_id: int | None = None,
) -> list[ParetoRow]:
    check_range(start, end)
    machines = machines_in_scope(session, principal, line_id, site_id)
    stops = [s for m in machines for s in _stops(session, store, m, start, end, min_duration_s)]
    assigned = _assigned(session, [m.id for m in machines], start, end)
    codes = {
        r.id: r.code
        for r in session.scalars(
            select(DowntimeReason).where(
                DowntimeReason.id.in_({row.reason_id for row in assigned.values()})
            )
        )
    }
    reasons = {key: codes[row.reason_id] for key, row in assigned.items()}
    return pareto(stops, reasons)
