"""Production: kpi, site calendars, production orders, stops and downtime reasons."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clusterbrain.cli.common import (
    DocumentFormat,
    _admin_context,
    _admin_principal,
    _checked,
    _dump,
    _local,
    _parse_moment,
    _percent,
    _read_document,
    _refusals,
    _zone,
    console,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from clusterbrain.platform.tenancy import Principal
    from clusterbrain.production.models import ProductionOrder

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

calendar_app = typer.Typer(help="Site shift calendars.", no_args_is_help=True)
orders_app = typer.Typer(help="Production orders.", no_args_is_help=True)
stops_app = typer.Typer(
    help="Stops and their downtime reasons (no command: list, with --from/--to)."
)
reasons_app = typer.Typer(help="Downtime reason trees, one per enterprise.", no_args_is_help=True)


# --- KPIs -----------------------------------------------------------------------------------------


def kpi(
    machine: Annotated[int, typer.Option(help="Machine id.")],
    start: Annotated[str, typer.Option("--from", help="Start, ISO 8601 (local time if no zone).")],
    end: Annotated[str, typer.Option("--to", help="End, ISO 8601 (local time if no zone).")],
    period: Annotated[
        str, typer.Option(help="Rows per: total, shift, day, week or month.")
    ] = "day",
    timezone: Annotated[str, typer.Option(help="Zone of dates without one.")] = "Asia/Shanghai",
) -> None:
    """Print OEE with availability, effectiveness and quality, per period, for one machine.

    Reads the store directly: with the embedded DuckDB store, stop `serve`/`demo` first.
    """
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import oee_service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            lo = _parse_moment(start, timezone, "--from")
            hi = _parse_moment(end, timezone, "--to")
            calendar, results = oee_service.machine_kpis_by_period(
                session, runtime.store, _admin_principal(session), machine, lo, hi, period, timezone
            )
            table = Table(
                "from", "to", "availability", "effectiveness", "quality", "OEE", "good", "scrap"
            )
            for result in results:
                k, e = result.kpis, result.elements
                table.add_row(
                    _local(result.start, calendar.zone),
                    _local(result.end, calendar.zone),
                    _percent(k.availability),
                    _percent(k.effectiveness),
                    _percent(k.quality_ratio),
                    _percent(k.oee),
                    f"{e.good_quantity:.0f}",
                    f"{e.scrap_quantity:.0f}",
                )
            console.print(table)
    finally:
        runtime.close()


# --- site calendars -------------------------------------------------------------------------------


@calendar_app.command("show")
def calendar_show(
    site: Annotated[int, typer.Option(help="Site id.")],
    fmt: Annotated[DocumentFormat, typer.Option("--format", help="Output format.")] = (
        DocumentFormat.JSON
    ),
) -> None:
    """Print a site's calendar; a site without one is planned around the clock."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.kpi_api import get_calendar

    runtime = _admin_context()
    try:
        with _refusals():
            with session_scope(runtime.sessions) as session:
                document = get_calendar(site, session, _admin_principal(session))
            typer.echo(_dump(document, fmt))
    finally:
        runtime.close()


@calendar_app.command("set")
def calendar_set(
    site: Annotated[int, typer.Option(help="Site id.")],
    file: Annotated[Path, typer.Option(help="Calendar document, .json or .yaml.")],
) -> None:
    """Replace a site's calendar: shifts with breaks, holidays, make-up days, maintenance, zone."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.kpi_api import put_calendar

    runtime = _admin_context()
    try:
        with _refusals():
            body = _read_document(file)
            with session_scope(runtime.sessions) as session:
                saved = put_calendar(site, body, session, _admin_principal(session))
    finally:
        runtime.close()
    table = Table("shift", "start", "end", "days", "breaks")
    for shift in saved["pattern"]["shifts"]:
        table.add_row(
            shift["name"],
            shift["start"],
            shift["end"],
            " ".join(WEEKDAYS[day] for day in sorted(shift["days"])),
            ", ".join(f"{b['start']}–{b['end']}" for b in shift["breaks"]),
        )
    console.print(f"calendar of site {site} saved ({saved['timezone']})")
    console.print(table)


# --- production orders ----------------------------------------------------------------------------

ORDER_OPTIONS = {
    "machine_id": "--machine",
    "order_number": "--order-number",
    "product": "--product",
    "ideal_cycle_time_s": "--ideal-cycle-time",
    "units_per_cycle": "--units-per-cycle",
    "planned_quantity": "--quantity",
    "planned_start": "--from",
    "planned_end": "--to",
}


def _orders_table(orders: Iterable[ProductionOrder], zone: tzinfo) -> Table:
    table = Table(
        "id", "order", "machine", "product", "cycle s", "units", "quantity", "from", "to", "status"
    )
    for order in orders:
        table.add_row(
            str(order.id),
            order.order_number,
            str(order.machine_id),
            order.product,
            f"{order.ideal_cycle_time_s:g}",
            str(order.units_per_cycle),
            str(order.planned_quantity),
            _local(order.planned_start, zone),
            _local(order.planned_end, zone),
            order.status,
        )
    return table


@orders_app.command("list")
def orders_list(
    machine: Annotated[int | None, typer.Option(help="One machine; all when omitted.")] = None,
    timezone: Annotated[str, typer.Option(help="Zone to show times in.")] = "Asia/Shanghai",
) -> None:
    """List production orders by planned start."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            orders = service.list_orders(session, _admin_principal(session), machine)
            console.print(_orders_table(orders, _zone(timezone)))
    finally:
        runtime.close()


@orders_app.command("add")
def orders_add(
    machine: Annotated[int, typer.Option(help="Machine id.")],
    order_number: Annotated[str, typer.Option(help="The order's number.")],
    product: Annotated[str, typer.Option(help="Product made.")],
    ideal_cycle_time: Annotated[float, typer.Option(help="Ideal cycle time, seconds.")],
    quantity: Annotated[int, typer.Option(help="Planned quantity.")],
    start: Annotated[str, typer.Option("--from", help="Planned start, ISO 8601.")],
    end: Annotated[str, typer.Option("--to", help="Planned end, ISO 8601.")],
    units_per_cycle: Annotated[int, typer.Option(help="Units made per cycle.")] = 1,
    timezone: Annotated[str, typer.Option(help="Zone of times without one.")] = "Asia/Shanghai",
) -> None:
    """Plan a production order; inside its window its ideal cycle time applies."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import schemas, service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            data = {
                "machine_id": machine,
                "order_number": order_number,
                "product": product,
                "ideal_cycle_time_s": ideal_cycle_time,
                "units_per_cycle": units_per_cycle,
                "planned_quantity": quantity,
                "planned_start": _parse_moment(start, timezone, "--from"),
                "planned_end": _parse_moment(end, timezone, "--to"),
            }
            order = service.create_order(
                session,
                _admin_principal(session),
                _checked(schemas.OrderIn, data, ORDER_OPTIONS),
            )
            console.print(f"production order {order.id} added")
            console.print(_orders_table([order], _zone(timezone)))
    finally:
        runtime.close()


@orders_app.command("delete")
def orders_delete(order_id: Annotated[int, typer.Argument(help="Production order id.")]) -> None:
    """Delete a production order."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            service.delete_order(session, _admin_principal(session), order_id)
        console.print(f"production order {order_id} deleted")
    finally:
        runtime.close()


# --- stops and downtime reasons -------------------------------------------------------------------


def _stop_id(machine_id: int, start: datetime, zone: tzinfo | None) -> str:
    """What `stops assign` takes: the machine and the exact start of the stop."""
    return f"{machine_id}@{start.astimezone(zone).isoformat()}"


def _parse_stop_id(stop_id: str) -> tuple[int, datetime]:
    from clusterbrain.platform.errors import InvalidInput

    machine, _, start = stop_id.partition("@")
    try:
        moment = datetime.fromisoformat(start)
        machine_id = int(machine)
    except ValueError as exc:
        raise InvalidInput(
            f"STOP_ID: {stop_id!r} is not MACHINE@START as `stops` lists it", field="STOP_ID"
        ) from exc
    if moment.tzinfo is None:
        raise InvalidInput("STOP_ID: the start needs a time zone", field="STOP_ID")
    return machine_id, moment


def _list_stops(
    start: str, end: str, machine: int | None, min_minutes: float, timezone: str
) -> None:
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.models import Machine
    from clusterbrain.platform.service import list_scoped
    from clusterbrain.production import downtime_service
    from clusterbrain.production.models import DowntimeReason

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            lo = _parse_moment(start, timezone, "--from")
            hi = _parse_moment(end, timezone, "--to")
            principal = _admin_principal(session)
            machines = [m.id for m in list_scoped(session, Machine, principal)]
            ids = [machine] if machine is not None else machines
            table = Table("stop", "state", "minutes", "reason", "comment")
            for machine_id in ids:
                for stop, reason in downtime_service.machine_stops(
                    session, runtime.store, principal, machine_id, lo, hi, min_minutes * 60
                ):
                    row = session.get(DowntimeReason, reason.reason_id) if reason else None
                    table.add_row(
                        _stop_id(machine_id, stop.start, lo.tzinfo),
                        stop.state.value,
                        f"{stop.seconds / 60:.0f}",
                        row.code if row else "awaiting reason",
                        reason.comment if reason else "",
                    )
            pareto = downtime_service.downtime_pareto(
                session, runtime.store, principal, lo, hi, min_duration_s=min_minutes * 60
            )
            console.print(table)
            summary = Table("reason", "minutes", "stops", "share", "cumulative")
            for line in pareto:
                summary.add_row(
                    line.reason,
                    f"{line.seconds / 60:.0f}",
                    str(line.stops),
                    _percent(line.share),
                    _percent(line.cumulative_share),
                )
            console.print(summary)
    finally:
        runtime.close()


StopsFrom = Annotated[
    str | None, typer.Option("--from", help="Start, ISO 8601 (local time if no zone).")
]
StopsTo = Annotated[str | None, typer.Option("--to", help="End, ISO 8601 (local time if no zone).")]
StopsMachine = Annotated[int | None, typer.Option(help="One machine; all when omitted.")]
StopsMinutes = Annotated[float, typer.Option(help="Only stops at least this long.")]
StopsZone = Annotated[str, typer.Option(help="Zone of dates without one.")]


@stops_app.callback(invoke_without_command=True)
def stops(
    ctx: typer.Context,
    start: StopsFrom = None,
    end: StopsTo = None,
    machine: StopsMachine = None,
    min_minutes: StopsMinutes = 5.0,
    timezone: StopsZone = "Asia/Shanghai",
) -> None:
    """Stops and their downtime reasons; with --from/--to and no command: `stops list`."""
    if ctx.invoked_subcommand is not None:
        return
    if start is None or end is None:
        raise typer.BadParameter("--from and --to are needed to list stops")
    _list_stops(start, end, machine, min_minutes, timezone)


@stops_app.command("list")
def stops_list(
    start: StopsFrom = None,
    end: StopsTo = None,
    machine: StopsMachine = None,
    min_minutes: StopsMinutes = 5.0,
    timezone: StopsZone = "Asia/Shanghai",
) -> None:
    """List stops (id MACHINE@START) with their reasons, then the Pareto of time lost by reason."""
    if start is None or end is None:
        raise typer.BadParameter("--from and --to are needed to list stops")
    _list_stops(start, end, machine, min_minutes, timezone)


def _reason_id(session: Session, principal: Principal, machine_id: int, code: str) -> int:
    """The id of a reason code in the machine's enterprise (its standard tree on first use)."""
    from sqlalchemy import select

    from clusterbrain.platform.errors import NotFound
    from clusterbrain.platform.models import Machine
    from clusterbrain.platform.service import get_scoped
    from clusterbrain.production import service
    from clusterbrain.production.models import DowntimeReason

    machine = get_scoped(session, Machine, machine_id, principal)
    service.ensure_standard_reasons(session, machine.enterprise_id)
    reason_id = session.scalar(
        select(DowntimeReason.id).where(
            DowntimeReason.enterprise_id == machine.enterprise_id,
            DowntimeReason.code == code.upper(),
        )
    )
    if reason_id is None:
        raise NotFound(f"--reason: no downtime reason {code!r}", field="--reason")
    return reason_id


@stops_app.command("assign")
def stops_assign(
    stop_id: Annotated[str, typer.Argument(help="MACHINE@START, as `stops` lists it.")],
    reason: Annotated[str, typer.Option(help="Downtime reason code, e.g. BRK.MECH.")],
    comment: Annotated[str, typer.Option(help="The operator's note.")] = "",
) -> None:
    """Record why a machine stopped."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import downtime_service, schemas

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            machine_id, start = _parse_stop_id(stop_id)
            principal = _admin_principal(session)
            body = _checked(
                schemas.AssignReasonIn,
                {
                    "start": start,
                    "reason_id": _reason_id(session, principal, machine_id, reason),
                    "comment": comment,
                },
                {"comment": "--comment"},
            )
            downtime_service.assign_reason(
                session,
                runtime.store,
                principal,
                machine_id,
                body.start,
                body.reason_id,
                body.comment,
            )
        console.print(f"stop {stop_id}: reason {reason.upper()}")
    finally:
        runtime.close()


# --- downtime reason trees ------------------------------------------------------------------------

EnterpriseOption = Annotated[int, typer.Option(help="Enterprise id.")]


def _acting_for(session: Session, enterprise_id: int) -> Principal:
    """The shell's administrator acting as an admin of one enterprise (writes land there)."""
    from dataclasses import replace

    from clusterbrain.platform.errors import NotFound
    from clusterbrain.platform.models import Enterprise, Role

    if session.get(Enterprise, enterprise_id) is None:
        raise NotFound(f"--enterprise: no enterprise {enterprise_id}", field="--enterprise")
    return replace(
        _admin_principal(session), role=Role.ENTERPRISE_ADMIN, enterprise_id=enterprise_id
    )


def _reasons_table(reasons: Iterable[Any]) -> Table:
    rows = list(reasons)
    codes = {r.id: r.code for r in rows}
    table = Table("id", "code", "parent", "category", "English", "中文", "active")
    for r in rows:
        table.add_row(
            str(r.id),
            r.code,
            codes.get(r.parent_id, ""),
            r.category,
            r.name_en,
            r.name_zh,
            "yes" if r.active else "no",
        )
    return table


@reasons_app.command("list")
def reasons_list(enterprise: EnterpriseOption) -> None:
    """The enterprise's reason tree (the standard tree on first use)."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            reasons = service.list_reasons(session, _acting_for(session, enterprise))
            console.print(_reasons_table(reasons))
    finally:
        runtime.close()


@reasons_app.command("add")
def reasons_add(
    enterprise: EnterpriseOption,
    code: Annotated[str, typer.Option(help="Code, e.g. BRK.HYD (upper case, dots).")],
    name_en: Annotated[str, typer.Option(help="Name in English.")],
    name_zh: Annotated[str, typer.Option(help="Name in Chinese.")],
    category: Annotated[
        str,
        typer.Option(help="unplanned_down, planned_stop, setup, small_stop, quality or external."),
    ],
    parent: Annotated[str | None, typer.Option(help="Code of the parent reason.")] = None,
) -> None:
    """Add a reason to the enterprise's tree."""
    from sqlalchemy import select

    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.errors import NotFound
    from clusterbrain.production import schemas, service
    from clusterbrain.production.models import DowntimeReason

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            principal = _acting_for(session, enterprise)
            service.ensure_standard_reasons(session, enterprise)
            parent_id = None
            if parent is not None:
                parent_id = session.scalar(
                    select(DowntimeReason.id).where(
                        DowntimeReason.enterprise_id == enterprise,
                        DowntimeReason.code == parent.upper(),
                    )
                )
                if parent_id is None:
                    raise NotFound(f"--parent: no downtime reason {parent!r}", field="--parent")
            data = {
                "code": code,
                "parent_id": parent_id,
                "name_en": name_en,
                "name_zh": name_zh,
                "category": category,
            }
            options = {k: f"--{k.replace('_', '-')}" for k in data} | {"parent_id": "--parent"}
            reason = service.create_reason(
                session, principal, _checked(schemas.ReasonIn, data, options)
            )
            console.print(f"downtime reason {reason.id} ({reason.code}) added")
    finally:
        runtime.close()


@reasons_app.command("edit")
def reasons_edit(
    reason_id: Annotated[int, typer.Argument(help="Reason id, as `reasons list` shows it.")],
    name_en: Annotated[str | None, typer.Option(help="New English name.")] = None,
    name_zh: Annotated[str | None, typer.Option(help="New Chinese name.")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Offer it to operators or not.")
    ] = None,
) -> None:
    """Rename a reason, or retire it (--inactive) without losing the stops it explains."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import schemas, service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            data = {
                k: v
                for k, v in (("name_en", name_en), ("name_zh", name_zh), ("active", active))
                if v is not None
            }
            options = {"name_en": "--name-en", "name_zh": "--name-zh", "active": "--active"}
            patch = _checked(schemas.ReasonPatch, data, options)
            reason = service.update_reason(session, _admin_principal(session), reason_id, patch)
            console.print(_reasons_table([reason]))
    finally:
        runtime.close()
