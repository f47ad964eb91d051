"""E-mailed report subscriptions, and downloads as CSV or Excel."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clusterbrain.cli.common import (
    _admin_context,
    _admin_principal,
    _checked,
    _parse_moment,
    _refusals,
    console,
)

reports_app = typer.Typer(
    help="E-mailed shift and day reports: subscriptions.", no_args_is_help=True
)
export_app = typer.Typer(
    help="Downloads as CSV or Excel (by the --output suffix; '-' is CSV on stdout).",
    no_args_is_help=True,
)


# --- report subscriptions -------------------------------------------------------------------------


def _subscriptions_table(subscriptions: Iterable[Any]) -> Table:
    table = Table("id", "enterprise", "site", "e-mail", "period", "language", "last sent", "error")
    for s in subscriptions:
        table.add_row(
            str(s.id),
            str(s.enterprise_id),
            str(s.site_id),
            s.email,
            s.period,
            s.language,
            "–" if s.last_period_end is None else f"{s.last_period_end:%Y-%m-%d %H:%M} UTC",
            s.last_error,
        )
    return table


@reports_app.command("list")
def reports_list() -> None:
    """Every report subscription with when its last period was sent."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            rows = service.list_subscriptions(session, _admin_principal(session))
            console.print(_subscriptions_table(rows))
    finally:
        runtime.close()


@reports_app.command("subscribe")
def reports_subscribe(
    site: Annotated[int, typer.Option(help="Site id.")],
    email: Annotated[str, typer.Option(help="Address to send the report to.")],
    period: Annotated[str, typer.Option(help="shift or day.")] = "shift",
    language: Annotated[str, typer.Option(help="zh-CN or en.")] = "zh-CN",
) -> None:
    """E-mail a site's shift or day report (HTML with a PDF) after each period."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.errors import NotFound
    from clusterbrain.platform.models import Site
    from clusterbrain.production import schemas, service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            if session.get(Site, site) is None:
                raise NotFound(f"--site: no site {site}", field="--site")
            data = {"site_id": site, "email": email, "period": period, "language": language}
            options = {k: f"--{k}" for k in ("email", "period", "language")} | {"site_id": "--site"}
            created = service.create_subscription(
                session, _admin_principal(session), _checked(schemas.SubscriptionIn, data, options)
            )
            console.print(f"report subscription {created.id} added")
            console.print(_subscriptions_table([created]))
    finally:
        runtime.close()


@reports_app.command("unsubscribe")
def reports_unsubscribe(
    subscription_id: Annotated[int, typer.Argument(help="Subscription id.")],
) -> None:
    """Stop a report subscription."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            service.delete_subscription(session, _admin_principal(session), subscription_id)
        console.print(f"report subscription {subscription_id} deleted")
    finally:
        runtime.close()


# --- exports --------------------------------------------------------------------------------------

StartOption = Annotated[
    str, typer.Option("--from", help="Start, ISO 8601 (local time if no zone).")
]
EndOption = Annotated[str, typer.Option("--to", help="End, ISO 8601 (local time if no zone).")]
OutputOption = Annotated[
    str, typer.Option("--output", "-o", help="File to write: .csv or .xlsx; '-' for CSV on stdout.")
]
ZoneOption = Annotated[str, typer.Option(help="Zone of dates without one.")]


def _export_format(output: str) -> str:
    from clusterbrain.platform.errors import InvalidInput

    if output == "-" or output.lower().endswith(".csv"):
        return "csv"
    if output.lower().endswith(".xlsx"):
        return "xlsx"
    raise InvalidInput("--output: the file name must end in .csv or .xlsx", field="--output")


def _write_export(
    output: str, sheet: str, header: Iterable[str], rows: Iterable[Iterable[Any]]
) -> None:
    """Write the rows as they come (a year of raw points never sits in memory)."""
    import sys

    from clusterbrain.platform.export import csv_chunks, write_xlsx

    columns = list(header)
    if _export_format(output) == "xlsx":
        written = write_xlsx(Path(output), sheet, columns, (list(r) for r in rows))
    else:
        counted = [0]

        def counting() -> Iterator[list[Any]]:
            for row in rows:
                counted[0] += 1
                yield list(row)

        with ExitStack() as stack:
            target = (
                sys.stdout.buffer if output == "-" else stack.enter_context(Path(output).open("wb"))
            )
            for chunk in csv_chunks(columns, counting()):
                target.write(chunk)
            target.flush()
        written = counted[0]
    typer.echo(f"wrote {written:,} rows to {'stdout' if output == '-' else output}", err=True)


@export_app.command("telemetry")
def export_telemetry(
    device: Annotated[str, typer.Option(help="Device id.")],
    tag: Annotated[list[str], typer.Option(help="Tag to export; repeat for several.")],
    start: StartOption,
    end: EndOption,
    output: OutputOption,
    timezone: ZoneOption = "Asia/Shanghai",
) -> None:
    """Raw points (numeric and text) of a device in time order."""
    from clusterbrain.devices.service import get_device
    from clusterbrain.platform.db import session_scope
    from clusterbrain.telemetry.export import POINT_EXPORT_COLUMNS, point_rows

    runtime = _admin_context()
    try:
        with _refusals():
            _export_format(output)
            lo, hi = _range(start, end, timezone)
            with session_scope(runtime.sessions) as session:
                get_device(session, _admin_principal(session), device)
            rows = point_rows(runtime.store, device, tag, lo, hi)
            _write_export(output, f"{device}-telemetry", POINT_EXPORT_COLUMNS, rows)
    finally:
        runtime.close()


@export_app.command("kpis")
def export_kpis(
    machine: Annotated[int, typer.Option(help="Machine id.")],
    start: StartOption,
    end: EndOption,
    output: OutputOption,
    period: Annotated[
        str, typer.Option(help="Rows per: total, shift, day, week or month.")
    ] = "day",
    timezone: ZoneOption = "Asia/Shanghai",
) -> None:
    """OEE, its components and the other KPIs of one machine, a row per period."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import exports, oee_service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            _export_format(output)
            lo, hi = _range(start, end, timezone)
            _, results = oee_service.machine_kpis_by_period(
                session, runtime.store, _admin_principal(session), machine, lo, hi, period, timezone
            )
            rows = exports.kpi_rows(results)
            _write_export(output, f"machine-{machine}-kpis", exports.KPI_EXPORT_COLUMNS, rows)
    finally:
        runtime.close()


@export_app.command("states")
def export_states(
    machine: Annotated[int, typer.Option(help="Machine id.")],
    start: StartOption,
    end: EndOption,
    output: OutputOption,
    timezone: ZoneOption = "Asia/Shanghai",
) -> None:
    """The state intervals of one machine (running, idle, down, ...)."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import exports, oee_service

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            _export_format(output)
            lo, hi = _range(start, end, timezone)
            result = oee_service.machine_kpis(
                session,
                runtime.store,
                _admin_principal(session),
                machine,
                lo,
                hi,
                with_intervals=True,
            )
            rows = exports.state_rows(result.intervals)
            _write_export(output, f"machine-{machine}-states", exports.STATE_EXPORT_COLUMNS, rows)
    finally:
        runtime.close()


@export_app.command("alarms")
def export_alarms(
    start: StartOption,
    end: EndOption,
    output: OutputOption,
    device: Annotated[str | None, typer.Option(help="Only this device's alarms.")] = None,
    priority: Annotated[
        str | None, typer.Option(help="Only this priority: critical, high, medium or low.")
    ] = None,
    timezone: ZoneOption = "Asia/Shanghai",
) -> None:
    """The alarm journal: every raise, clear, acknowledgement, shelve and suppression."""
    from clusterbrain.devices.service import get_device
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.errors import InvalidInput
    from clusterbrain.production import exports

    runtime = _admin_context()
    try:
        with _refusals():
            _export_format(output)
            lo, hi = _range(start, end, timezone)
            if priority not in (None, "critical", "high", "medium", "low"):
                raise InvalidInput(
                    "--priority: one of critical, high, medium, low", field="--priority"
                )
            with session_scope(runtime.sessions) as session:
                principal = _admin_principal(session)
                if device is not None:
                    get_device(session, principal, device)
            query = exports.alarm_journal_query(
                principal, lo, hi, device_id=device, priority=priority
            )
            rows = exports.alarm_rows(runtime.sessions, query)
            _write_export(output, "alarms", exports.ALARM_EXPORT_COLUMNS, rows)
    finally:
        runtime.close()


def _range(start: str, end: str, zone: str) -> tuple[datetime, datetime]:
    from clusterbrain.platform.errors import InvalidInput

    lo = _parse_moment(start, zone, "--from")
    hi = _parse_moment(end, zone, "--to")
    if hi <= lo:
        raise InvalidInput("--to: must be after --from", field="--to")
    return lo, hi
