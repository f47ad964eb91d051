"""The ``clusterbrain`` command: demo, serve, ingest, simulate, db, device, admin, production.

The root app and its tree; the commands live in a module per capability: ``platform`` (serve,
ingest, db, device, admin, telemetry), ``simulation`` (simulate, demo), ``production`` (kpi,
calendar, orders, stops, reasons), ``reports`` (reports, export), ``alarms`` and ``gateway``,
on what ``common`` shares.
"""

from __future__ import annotations

import typer

from clusterbrain.cli import alarms, gateway, platform, production, reports, simulation

app = typer.Typer(
    help="ClusterBrain: AIoT platform for clusters of small manufacturers.", no_args_is_help=True
)
app.add_typer(platform.db_app, name="db")
app.add_typer(platform.device_app, name="device")
app.add_typer(platform.admin_app, name="admin")
app.add_typer(platform.telemetry_app, name="telemetry")
app.add_typer(production.calendar_app, name="calendar")
app.add_typer(production.orders_app, name="orders")
app.add_typer(production.stops_app, name="stops")
app.add_typer(alarms.alarms_app, name="alarms")
app.add_typer(gateway.gateway_app, name="gateway")
app.add_typer(reports.export_app, name="export")
app.add_typer(production.reasons_app, name="reasons")
app.add_typer(reports.reports_app, name="reports")
app.command()(platform.serve)
app.command("ingest")(platform.ingest_command)
app.command()(simulation.simulate)
app.command()(simulation.demo)
app.command()(production.kpi)


def main() -> None:
    app()
