"""Routes of production KPIs, site calendars and machine production settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from clusterbrain.platform.db import utcnow
from clusterbrain.platform.errors import InvalidInput
from clusterbrain.platform.export import streamed_export
from clusterbrain.platform.models import Machine, Site
from clusterbrain.platform.service import get_scoped
from clusterbrain.platform.tenancy import CONFIGURE_ROLES
from clusterbrain.platform.web import PrincipalDep, SessionDep
from clusterbrain.production import downtime_service, exports, oee_service, schemas
from clusterbrain.production.calendar import SiteCalendar
from clusterbrain.production.kpi import TimeElements, compute_kpis
from clusterbrain.production.models import MachineSettings
from clusterbrain.production.models import SiteCalendar as SiteCalendarRow
from clusterbrain.production.states import StateRules
from clusterbrain.telemetry.store import TelemetryStore

router = APIRouter(prefix="/api/v1")
From = Annotated[datetime, Query(alias="from")]
To = Annotated[datetime, Query(alias="to")]
PeriodParam = Annotated[str, Query(pattern="^(total|shift|day|week|month)$")]
SourceParam = Annotated[Literal["auto", "stored", "raw"], Query()]


def get_store(request: Request) -> TelemetryStore:
    store: TelemetryStore = request.app.state.store
    return store


StoreDep = Annotated[TelemetryStore, Depends(get_store)]


def _elements_out(e: TimeElements) -> schemas.ElementsOut:
    return schemas.ElementsOut.model_validate(e)


def _report(result: oee_service.KpiResult) -> dict[str, Any]:
    return {
        "start": result.start,
        "end": result.end,
        "elements": _elements_out(result.elements),
        "kpis": schemas.KpisOut.model_validate(result.kpis),
        "losses": [schemas.LossOut(**step._asdict()) for step in result.losses],
        "intervals": [
            schemas.IntervalOut(state=i.state.value, start=i.start, end=i.end)
            for i in result.intervals
        ],
    }


@router.get("/machines/{machine_id}/kpis", tags=["production"], response_model=schemas.KpiReport)
def machine_kpis(
    machine_id: int,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    start: From,
    end: To,
    intervals: bool = False,
    source: SourceParam = "auto",
) -> schemas.KpiReport:
    """OEE with its components, the other ISO 22400-2 KPIs and the six-losses waterfall.

    ``source``: ``stored`` reads the state changes and counts kept while data arrived, ``raw``
    derives them from every raw point, ``auto`` (default) uses the stored ones where they cover
    the range.
    """
    result = oee_service.machine_kpis(
        session, store, principal, machine_id, start, end, with_intervals=intervals, source=source
    )
    return schemas.KpiReport(**_report(result))


@router.get(
    "/machines/{machine_id}/kpis/periods",
    tags=["production"],
    response_model=list[schemas.PeriodKpiRow],
)
def machine_kpis_by_period(
    machine_id: int,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    start: From,
    end: To,
    period: PeriodParam = "day",
    source: SourceParam = "auto",
) -> list[schemas.PeriodKpiRow]:
    """KPIs per shift, production day, week or month of the site's calendar."""
    _, results = oee_service.machine_kpis_by_period(
        session, store, principal, machine_id, start, end, period, source=source
    )
    return [
        schemas.PeriodKpiRow(
            start=r.start,
            end=r.end,
            elements=_elements_out(r.elements),
            kpis=schemas.KpisOut.model_validate(r.kpis),
        )
        for r in results
    ]


@router.get("/kpis", tags=["production"], response_model=schemas.GroupKpiReport)
def group_kpis(
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    start: From,
    end: To,
    line_id: int | None = None,
    site_id: int | None = None,
) -> schemas.GroupKpiReport:
    """KPIs of the enterprise (or one site or line), from time elements summed over machines."""
    total, per_machine = oee_service.group_kpis(
        session, store, principal, start, end, line_id=line_id, site_id=site_id
    )
    rows = [
        schemas.MachineKpiRow(
            machine_id=machine_id,
            elements=_elements_out(elements),
            kpis=schemas.KpisOut.model_validate(compute_kpis(elements)),
        )
        for machine_id, elements in per_machine.items()
    ]
    return schemas.GroupKpiReport(**_report(total), machines=rows)


# --- site calendars -----------------------------------------------------------------------------


@router.get("/sites/{site_id}/calendar", tags=["production"])
def get_calendar(site_id: int, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """The site's calendar; a site without one is planned around the clock."""
    site = get_scoped(session, Site, site_id, principal)
    row = session.query(SiteCalendarRow).filter_by(site_id=site.id).one_or_none()
    definition = row.definition if row else {}
    return SiteCalendar.model_validate(definition).model_dump(mode="json")


@router.put("/sites/{site_id}/calendar", tags=["production"])
def put_calendar(
    site_id: int, body: dict[str, Any], session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Shifts with breaks, holidays, make-up working days, maintenance and time zone."""
    site = get_scoped(session, Site, site_id, principal)
    principal.require(CONFIGURE_ROLES, "edit calendars")
    calendar = _validated(SiteCalendar, body)
    definition: dict[str, Any] = calendar.model_dump(mode="json")
    row = session.query(SiteCalendarRow).filter_by(site_id=site.id).one_or_none()
    if row is None:
        row = SiteCalendarRow(site_id=site.id, enterprise_id=site.enterprise_id, definition={})
        session.add(row)
    row.definition = definition
    row.updated_at = utcnow()
    return definition


def _validated(model: Any, body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"{where}: {first.get('msg', 'invalid')}", field=where or None) from exc


# --- machine production settings ---------------------------------------------------------------


@router.get(
    "/machines/{machine_id}/production-settings",
    tags=["production"],
    response_model=schemas.MachineSettingsOut,
)
def get_settings(machine_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    machine = get_scoped(session, Machine, machine_id, principal)
    row = session.get(MachineSettings, machine.id)
    if row is None:
        return schemas.MachineSettingsOut(machine_id=machine.id)
    return row


@router.put(
    "/machines/{machine_id}/production-settings",
    tags=["production"],
    response_model=schemas.MachineSettingsOut,
)
def put_settings(
    machine_id: int,
    body: schemas.MachineSettingsIn,
    session: SessionDep,
    principal: PrincipalDep,
    request: Request,
) -> object:
    """State rules, counter tags and the default ideal cycle time of a machine."""
    machine = get_scoped(session, Machine, machine_id, principal)
    principal.require(CONFIGURE_ROLES, "edit production settings")
    rules = _validated(StateRules, body.state_rules).to_dict() if body.state_rules else {}
    row = session.get(MachineSettings, machine.id)
    if row is None:
        row = MachineSettings(machine_id=machine.id, enterprise_id=machine.enterprise_id)
        session.add(row)
    row.state_rules = rules
    row.ideal_cycle_time_s = body.ideal_cycle_time_s
    row.good_count_tag = body.good_count_tag
    row.scrap_count_tag = body.scrap_count_tag
    row.energy_tag = body.energy_tag
    row.device_id = body.device_id
    session.commit()
    request.app.state.runtime.tracker.reload()  # data from now on is read by the new settings
    return row


# --- stops, reasons and Pareto ----------------------------------------------------------------

MinStop = Annotated[float, Query(ge=0, le=86_400, description="Only stops at least this long.")]


@router.get(
    "/machines/{machine_id}/stops", tags=["production"], response_model=list[schemas.StopOut]
)
def machine_stops(
    machine_id: int,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    start: From,
    end: To,
    min_duration_s: MinStop = downtime_service.DEFAULT_MIN_STOP_S,
) -> list[schemas.StopOut]:
    """Stops (down, idle, setup) long enough to need a reason, with the reason if given."""
    rows = downtime_service.machine_stops(
        session, store, principal, machine_id, start, end, min_duration_s
    )
    return [
        schemas.StopOut(
            machine_id=stop.machine_id,
            state=stop.state.value,
            start=stop.start,
            end=stop.end,
            seconds=stop.seconds,
            awaiting_reason=reason is None,
            reason_id=reason.reason_id if reason else None,
            comment=reason.comment if reason else "",
        )
        for stop, reason in rows
    ]


@router.put("/machines/{machine_id}/stops/reason", tags=["production"])
def assign_stop_reason(
    machine_id: int,
    body: schemas.AssignReasonIn,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
) -> dict[str, Any]:
    if body.start.tzinfo is None:
        raise InvalidInput("start needs a time zone", field="start")
    row = downtime_service.assign_reason(
        session, store, principal, machine_id, body.start, body.reason_id, body.comment
    )
    return {"machine_id": row.machine_id, "start": row.stop_start, "reason_id": row.reason_id}


@router.get("/downtime-pareto", tags=["production"], response_model=list[schemas.ParetoRowOut])
def downtime_pareto(
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    start: From,
    end: To,
    min_duration_s: MinStop = downtime_service.DEFAULT_MIN_STOP_S,
    line_id: int | None = None,
    site_id: int | None = None,
) -> list[schemas.ParetoRowOut]:
    """Time lost per downtime reason, largest first (unexplained stops: awaiting_reason)."""
    rows = downtime_service.downtime_pareto(
        session,
        store,
        principal,
        start,
        end,
        min_duration_s=min_duration_s,
        line_id=line_id,
        site_id=site_id,
    )
    return [
        schemas.ParetoRowOut(
            reason=row.reason,
            seconds=row.seconds,
            stops=row.stops,
            share=row.share,
            cumulative_share=row.cumulative_share,
        )
        for row in rows
    ]


@router.get("/machines/{machine_id}/kpis/export", tags=["production"])
def export_kpis(
    machine_id: int,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    start: From,
    end: To,
    period: PeriodParam = "day",
    format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
) -> StreamingResponse:
    """KPIs per shift, day, week or month as CSV or Excel."""
    _, results = oee_service.machine_kpis_by_period(
        session, store, principal, machine_id, start, end, period
    )
    rows = exports.kpi_rows(results)
    tmp = request.app.state.settings.var_dir / "exports"
    body, media, headers = streamed_export(
        format, f"machine-{machine_id}-kpis-{period}", exports.KPI_EXPORT_COLUMNS, rows, tmp
    )
    return StreamingResponse(body, media_type=media, headers=headers)


@router.get("/machines/{machine_id}/states/export", tags=["production"])
def export_states(
    machine_id: int,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    start: From,
    end: To,
    format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
) -> StreamingResponse:
    """The machine's state intervals as CSV or Excel."""
    result = oee_service.machine_kpis(
        session, store, principal, machine_id, start, end, with_intervals=True
    )
    rows = exports.state_rows(result.intervals)
    tmp = request.app.state.settings.var_dir / "exports"
    body, media, headers = streamed_export(
        format, f"machine-{machine_id}-states", exports.STATE_EXPORT_COLUMNS, rows, tmp
    )
    return StreamingResponse(body, media_type=media, headers=headers)


@router.get(
    "/machines/{machine_id}/state-intervals",
    tags=["production"],
    response_model=list[schemas.IntervalOut],
)
def state_intervals(
    machine_id: int,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    start: From,
    end: To,
) -> list[schemas.IntervalOut]:
    """The machine's states as kept while data arrived (derived from raw points where the range
    begins before tracking did); time without data is offline."""
    oee_service.check_range(start, end)
    machine = get_scoped(session, Machine, machine_id, principal)
    setup = oee_service.machine_setup(session, machine)
    stored = oee_service.uses_stored(store, setup, start, "auto")
    return [
        schemas.IntervalOut(state=i.state.value, start=i.start, end=i.end)
        for i in oee_service.machine_runs(store, setup, start, end, stored).intervals()
    ]
