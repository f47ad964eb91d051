"""The ``clusterbrain`` command: demo, serve, ingest, simulate, db, device, admin, production."""

from __future__ import annotations

import enum
import json
import logging
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table

from clusterbrain.platform.settings import Settings

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.orm import Session

    from clusterbrain.api.provision import ProvisionedDevice
    from clusterbrain.api.runtime import Runtime
    from clusterbrain.connectors.gateway.runner import Gateway
    from clusterbrain.platform.tenancy import Principal
    from clusterbrain.production.alarm_api import AlarmOut
    from clusterbrain.production.alarm_engine import AlarmEngine
    from clusterbrain.production.models import ProductionOrder
    from clusterbrain.sim.profiles import ReadyProfile
    from clusterbrain.sim.runner import Simulator

M = TypeVar("M", bound="BaseModel")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

app = typer.Typer(
    help="ClusterBrain: AIoT platform for clusters of small manufacturers.", no_args_is_help=True
)
db_app = typer.Typer(help="Metadata database.", no_args_is_help=True)
device_app = typer.Typer(help="Device registry.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration.", no_args_is_help=True)
telemetry_app = typer.Typer(help="Telemetry store.", no_args_is_help=True)
calendar_app = typer.Typer(help="Site shift calendars.", no_args_is_help=True)
orders_app = typer.Typer(help="Production orders.", no_args_is_help=True)
stops_app = typer.Typer(
    help="Stops and their downtime reasons (no command: list, with --from/--to)."
)
alarms_app = typer.Typer(help="Alarms and their lifecycle (no command: list).")
gateway_app = typer.Typer(
    help="Edge gateway: run it (--config gateway.yaml), discover OPC UA servers, ready profiles."
)
reasons_app = typer.Typer(help="Downtime reason trees, one per enterprise.", no_args_is_help=True)
reports_app = typer.Typer(
    help="E-mailed shift and day reports: subscriptions.", no_args_is_help=True
)
export_app = typer.Typer(
    help="Downloads as CSV or Excel (by the --output suffix; '-' is CSV on stdout).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(device_app, name="device")
app.add_typer(admin_app, name="admin")
app.add_typer(telemetry_app, name="telemetry")
app.add_typer(calendar_app, name="calendar")
app.add_typer(orders_app, name="orders")
app.add_typer(stops_app, name="stops")
app.add_typer(alarms_app, name="alarms")
app.add_typer(gateway_app, name="gateway")
app.add_typer(export_app, name="export")
app.add_typer(reasons_app, name="reasons")
app.add_typer(reports_app, name="reports")
console = Console()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


# --- database -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the metadata database to the newest schema."""
    from clusterbrain.platform.migrate import upgrade

    settings = Settings()
    upgrade(settings.resolved_database_url())
    console.print(f"[green]metadata database is up to date[/] ({settings.resolved_database_url()})")


# --- serving ------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address of the API.")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the API.")] = None,
    ingest: Annotated[bool, typer.Option(help="Also run the MQTT ingest.")] = True,
    verbose: bool = False,
) -> None:
    """Run the API (OpenAPI at /docs) and, by default, the MQTT ingest."""
    import uvicorn

    from clusterbrain.api.app import create_app
    from clusterbrain.api.runtime import Runtime

    _setup_logging(verbose)
    settings = Settings()
    runtime = Runtime(settings)
    runtime.start_ingest(mqtt=ingest)
    runtime.start_scheduler()
    uvicorn.run(
        create_app(runtime, manage_runtime=True),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
    )


@app.command("ingest")
def ingest_command(
    worker_id: Annotated[str, typer.Option(help="Suffix of this worker's MQTT client id.")] = "",
    verbose: bool = False,
) -> None:
    """Run ingest workers alone; several share the load via $share/<group>/ (MQTT 5).

    Several workers need the postgres telemetry backend (DuckDB is one process's file).
    """
    from clusterbrain.api.runtime import Runtime

    _setup_logging(verbose)
    runtime = Runtime(Settings())
    runtime.start_ingest(mqtt=True, worker_id=worker_id)
    console.print("[green]ingest running[/]; Ctrl-C stops it")
    try:
        _wait_for_signal()
    finally:
        runtime.close()


@app.command()
def simulate(
    enterprises: Annotated[int, typer.Option(min=1, help="Simulated enterprises.")] = 3,
    machines: Annotated[int, typer.Option(min=1, help="Simulated machines in total.")] = 30,
    interval: Annotated[float, typer.Option(help="Seconds between samples of a machine.")] = 1.0,
    batch: Annotated[int, typer.Option(min=1, help="Samples per message (1 = single).")] = 1,
    fault_rate: Annotated[float, typer.Option(help="Faults per machine and hour.")] = 0.5,
    ground_truth: Annotated[
        Path | None, typer.Option(help="JSON-lines log of injected faults.")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 = until Ctrl-C.")] = 0.0,
    seed: int = 7,
    serve: Annotated[
        str,
        typer.Option(
            help="Instead: serve simulated field devices for a gateway, opcua, modbus or both "
            "(opcua,modbus), and print a gateway.yaml that reads them."
        ),
    ] = "",
    host: Annotated[str, typer.Option(help="Address --serve listens on.")] = "127.0.0.1",
    opcua_port: Annotated[int, typer.Option(help="Port of the OPC UA server (--serve).")] = 4840,
    modbus_port: Annotated[int, typer.Option(help="Port of the Modbus server (--serve).")] = 5020,
    gateway_yaml: Annotated[
        Path | None, typer.Option(help="Also write the gateway.yaml there (--serve).")
    ] = None,
) -> None:
    """Provision a simulated cluster and publish its machines' telemetry over MQTT.

    With --serve, run simulated OPC UA and Modbus TCP field devices instead (an injection
    moulding machine and a CNC machine; a power meter and an air compressor) for an edge gateway.
    """
    from clusterbrain.api.provision import provision_cluster
    from clusterbrain.api.runtime import Registry

    settings = Settings()
    if serve:
        protocols = _serve_protocols(serve)
        ports = {"opcua": opcua_port, "modbus": modbus_port}
        _serve_field_devices(settings, protocols, host, ports, duration, gateway_yaml, seed)
        return
    # not a Runtime: `clusterbrain serve` may hold the DuckDB store of the same var_dir
    registry = Registry(settings)
    try:
        devices = provision_cluster(registry, enterprises=enterprises, machines=machines)
    finally:
        registry.close()
    simulator = _simulator(settings, devices, interval, batch, fault_rate, ground_truth, seed)
    console.print(f"simulating {len(devices)} machines → {settings.mqtt_host}:{settings.mqtt_port}")
    _run_simulator(simulator, duration)


def _simulator(
    settings: Settings,
    devices: list[ProvisionedDevice],
    interval: float,
    batch: int,
    fault_rate: float,
    ground_truth: Path | None,
    seed: int,
) -> Simulator:
    from clusterbrain.sim.runner import SimulatedDevice, Simulator

    return Simulator(
        [SimulatedDevice(d.device_id, d.secret, d.kind, d.machine_name) for d in devices],
        settings.mqtt_host,
        settings.mqtt_port,
        interval_s=interval,
        batch=batch,
        protocol=settings.mqtt_protocol,
        fault_rate_per_hour=fault_rate,
        ground_truth_path=ground_truth,
        seed=seed,
    )


def _run_simulator(simulator: Simulator, duration: float) -> None:
    simulator.start()
    try:
        if duration > 0:
            time.sleep(duration)
        else:
            _wait_for_signal()
    finally:
        simulator.stop()


# --- the demo -----------------------------------------------------------------------------------


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port of the web API.")] = 8000,
    mqtt_port: Annotated[int, typer.Option(help="Port of the embedded MQTT broker.")] = 1884,
    enterprises: Annotated[int, typer.Option(min=1)] = 3,
    machines: Annotated[int, typer.Option(min=1)] = 30,
    var_dir: Annotated[Path, typer.Option(help="Where the demo keeps its data.")] = Path(
        "var/demo"
    ),
    history_hours: Annotated[
        float, typer.Option(min=0, help="Hours of simulated history before now (0: none).")
    ] = 24.0,
    verbose: bool = False,
    gateway: Annotated[
        bool, typer.Option(help="Run an edge gateway reading simulated Modbus devices.")
    ] = True,
) -> None:
    """A live simulated cluster on embedded defaults: broker, store, ingest, simulator, API."""
    import uvicorn

    from clusterbrain.api.app import create_app
    from clusterbrain.api.demo_gateway import start_demo_gateway
    from clusterbrain.api.history import backfill_history
    from clusterbrain.api.provision import provision_cluster
    from clusterbrain.api.runtime import Runtime
    from clusterbrain.connectors.mqtt.embedded_broker import EmbeddedBroker

    _setup_logging(verbose)
    ingest_password = secrets.token_urlsafe(16)
    settings = Settings(
        var_dir=var_dir,
        mqtt_host="127.0.0.1",
        mqtt_port=mqtt_port,
        mqtt_protocol="3.1.1",
        mqtt_username="cb-ingest",
        mqtt_password=ingest_password,
        mqtt_client_id="clusterbrain-demo-ingest",
    )
    runtime = Runtime(settings)
    broker = EmbeddedBroker(
        "127.0.0.1",
        mqtt_port,
        lambda user, secret: runtime.directory.authenticate(user, secret) is not None,
        service_accounts={"cb-ingest": ingest_password},
    ).start()
    devices = provision_cluster(runtime, enterprises=enterprises, machines=machines)
    runtime.start_ingest(mqtt=True)
    runtime.start_scheduler()
    simulator = _simulator(settings, devices, 1.0, 1, 2.0, var_dir / "ground_truth.jsonl", 7)

    # history first, then live from where it ended; the API is up meanwhile
    def history_then_live() -> None:
        backfill_history(runtime, simulator, history_hours)
        simulator.start()

    feeder = threading.Thread(target=history_then_live, name="demo-history", daemon=True)
    feeder.start()
    stop_gateway = start_demo_gateway(runtime, enabled=gateway)
    _print_demo_banner(runtime, port, mqtt_port, len(devices), enterprises)
    try:
        uvicorn.run(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    finally:
        stop_gateway()
        feeder.join(60)
        simulator.stop()
        runtime.close()
        broker.stop()


def _print_demo_banner(
    runtime: Runtime, port: int, mqtt_port: int, machines: int, enterprises: int
) -> None:
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.service import bootstrap_admin

    with session_scope(runtime.sessions) as session:
        _, token = bootstrap_admin(session, "admin")
    table = Table(title="ClusterBrain demo", show_header=False)
    table.add_row("API and OpenAPI", f"http://127.0.0.1:{port}/docs")
    table.add_row("Health / metrics", f"http://127.0.0.1:{port}/health  /metrics")
    table.add_row("MQTT broker (embedded)", f"127.0.0.1:{mqtt_port}")
    table.add_row(
        "Simulated cluster", f"{enterprises} enterprises, {machines} machines, 1 s samples"
    )
    table.add_row(
        "Sign in", "admin / demo (platform admin); manager1..N / demo (enterprise admins)"
    )
    table.add_row("Admin token", token)
    table.add_row(
        "Try", f"curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api/v1/devices"
    )
    console.print(table)


# --- devices --------------------------------------------------------------------------------------


def _admin_context() -> Runtime:
    from clusterbrain.api.runtime import Runtime

    return Runtime(Settings())


@device_app.command("add")
def device_add(
    profile: Annotated[int, typer.Option(help="Device profile id.")],
    enterprise: Annotated[int, typer.Option(help="Enterprise id.")],
    machine: Annotated[int | None, typer.Option(help="Machine id to bind to.")] = None,
    device_id: Annotated[
        str | None, typer.Option("--id", help="Device id (generated if omitted).")
    ] = None,
    name: str = "",
) -> None:
    """Register a device; prints its secret once."""
    from clusterbrain.devices import schemas, service
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.service import bootstrap_admin, principal_of

    runtime = _admin_context()
    try:
        with session_scope(runtime.sessions) as session:
            admin, _ = bootstrap_admin(session, "admin")
            principal = principal_of(admin)
            profile_row = service.get_profile(session, principal, profile)
            if profile_row.enterprise_id != enterprise:
                raise typer.BadParameter(f"profile {profile} is not of enterprise {enterprise}")
            device, secret = service.register_device(
                session,
                principal,
                schemas.DeviceIn(
                    profile_id=profile, machine_id=machine, device_id=device_id, name=name
                ),
                runtime.broker_auth,
            )
            console.print(f"device [bold]{device.id}[/] registered")
            console.print(f"secret (shown once): [bold yellow]{secret}[/]")
            console.print(f"MQTT: username={device.id} topic=cb/v1/{device.id}/telemetry")
    finally:
        runtime.close()


@device_app.command("list")
def device_list() -> None:
    """List devices with their status."""
    from clusterbrain.devices import service
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.service import bootstrap_admin, principal_of

    runtime = _admin_context()
    try:
        with session_scope(runtime.sessions) as session:
            admin, _ = bootstrap_admin(session, "admin")
            table = Table("device", "enterprise", "machine", "profile", "status", "last seen")
            for device in service.list_devices(session, principal_of(admin)):
                out = service.device_out(device)
                status = "revoked" if out.revoked else ("online" if out.online else "offline")
                table.add_row(
                    out.id,
                    str(out.enterprise_id),
                    str(out.machine_id or ""),
                    str(out.profile_id),
                    status,
                    str(out.last_seen_at or "never"),
                )
            console.print(table)
    finally:
        runtime.close()


@device_app.command("rotate")
def device_rotate(device_id: str) -> None:
    """Issue a new secret; the old one stops working at once."""
    from clusterbrain.devices import service
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.service import bootstrap_admin, principal_of

    runtime = _admin_context()
    try:
        with session_scope(runtime.sessions) as session:
            admin, _ = bootstrap_admin(session, "admin")
            _, secret = service.rotate_secret(
                session, principal_of(admin), device_id, runtime.broker_auth
            )
            console.print(f"new secret of {device_id} (shown once): [bold yellow]{secret}[/]")
    finally:
        runtime.close()


@device_app.command("revoke")
def device_revoke(device_id: str) -> None:
    """Revoke a device: it can no longer connect or post data."""
    from clusterbrain.devices import service
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.service import bootstrap_admin, principal_of

    runtime = _admin_context()
    try:
        with session_scope(runtime.sessions) as session:
            admin, _ = bootstrap_admin(session, "admin")
            service.revoke_device(session, principal_of(admin), device_id, runtime.broker_auth)
            console.print(f"device {device_id} revoked")
    finally:
        runtime.close()


@admin_app.command("token")
def admin_token(username: str = "admin") -> None:
    """Create the platform admin if needed and print a new API token for it."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.service import bootstrap_admin

    runtime = _admin_context()
    try:
        with session_scope(runtime.sessions) as session:
            _, token = bootstrap_admin(session, username)
            console.print(token)
    finally:
        runtime.close()


@device_app.command("sparkplug-credentials")
def device_sparkplug_credentials(
    group_id: str,
    edge_node_id: str,
    revoke: Annotated[bool, typer.Option(help="Remove the login instead.")] = False,
) -> None:
    """Broker login for a Sparkplug edge node of a claimed group, allowed only its own topics
    (needs CLUSTERBRAIN_BROKER_AUTH=dynsec); issuing again sets a new password."""
    from clusterbrain.devices import sparkplug
    from clusterbrain.platform.db import session_scope

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            principal = _admin_principal(session)
            if revoke:
                sparkplug.revoke_edge_node_credentials(
                    session, principal, group_id, edge_node_id, runtime.broker_auth
                )
                console.print(f"login of edge node {group_id}/{edge_node_id} removed")
                return
            issued = sparkplug.issue_edge_node_credentials(
                session, principal, group_id, edge_node_id, runtime.broker_auth
            )
            console.print(f"username: {issued.username}")
            console.print(f"password (shown once): [bold yellow]{issued.password}[/]")
    finally:
        runtime.close()


# --- shared by the production commands ------------------------------------------------------------


@contextmanager
def _refusals() -> Iterator[None]:
    """A refused request ends the command with one line on stderr and exit code 1."""
    from clusterbrain.platform.errors import ClusterBrainError

    try:
        yield
    except ClusterBrainError as exc:
        detail = " ".join(exc.detail.split())
        if exc.field and exc.field not in detail:
            detail = f"{exc.field}: {detail}"
        typer.echo(f"error: {detail}", err=True)
        raise typer.Exit(1) from exc


def _admin_principal(session: Session) -> Principal:
    from clusterbrain.platform.service import bootstrap_admin, principal_of

    return principal_of(bootstrap_admin(session, "admin")[0])


def _checked(model: type[M], data: dict[str, Any], options: Mapping[str, str]) -> M:
    """Validate with the API's model; the first error is reported under its command-line option."""
    from pydantic import ValidationError

    from clusterbrain.platform.errors import InvalidInput

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first.get("loc", ()))
        where = options.get(loc, loc)
        message = first.get("msg", "invalid").removeprefix("Value error, ")
        if where:
            raise InvalidInput(f"{where}: {message}", field=where) from exc
        for name, option in options.items():  # a rule across fields names them in its message
            message = re.sub(rf"\b{name}\b", option, message)
        raise InvalidInput(message) from exc


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from clusterbrain.platform.errors import InvalidInput

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"--timezone: unknown time zone {name!r}", field="--timezone") from exc


def _parse_moment(text: str, zone: str, option: str) -> datetime:
    """ISO 8601; a date or a time without zone is local time of the site's zone."""
    from clusterbrain.platform.errors import InvalidInput

    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{option}: not an ISO 8601 time: {text!r}", field=option) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=_zone(zone))


def _local(moment: datetime, zone: tzinfo | None) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


# --- KPIs -----------------------------------------------------------------------------------------


@app.command()
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


# --- downtime reasons and report subscriptions ---------------------------------------------------

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


# --- site calendars -------------------------------------------------------------------------------


class DocumentFormat(enum.StrEnum):
    JSON = "json"
    YAML = "yaml"


def _yaml() -> Any:
    """PyYAML, imported only when a YAML file is read or written."""
    from clusterbrain.platform.errors import InvalidInput

    try:
        import yaml
    except ImportError as exc:
        raise InvalidInput("YAML needs PyYAML installed; use a .json file", field="--file") from exc
    return yaml


def _yaml_loader(yaml: Any) -> Any:
    """YAML 1.1 without base-60 integers: an unquoted 20:00 stays a time, not 1200."""
    int_tag = "tag:yaml.org,2002:int"
    loader: Any = type("CalendarLoader", (yaml.SafeLoader,), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != int_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        int_tag, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
    )
    return loader


def _read_document(path: Path) -> dict[str, Any]:
    """A JSON or YAML mapping, by the file's suffix."""
    from clusterbrain.platform.errors import InvalidInput

    suffix = path.suffix.lower()
    if suffix not in {".json", ".yaml", ".yml"}:
        raise InvalidInput(f"--file: {path.name} is neither .json nor .yaml", field="--file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--file: cannot read {path}: {exc}", field="--file") from exc
    if suffix == ".json":
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"--file: {path.name} is not JSON: {exc}", field="--file") from exc
    else:
        yaml = _yaml()
        try:
            document = yaml.load(text, Loader=_yaml_loader(yaml))
        except yaml.YAMLError as exc:
            message = " ".join(str(exc).split())
            raise InvalidInput(
                f"--file: {path.name} is not YAML: {message}", field="--file"
            ) from exc
    if not isinstance(document, dict):
        raise InvalidInput(f"--file: {path.name} must hold a mapping", field="--file")
    return document


def _dump(document: dict[str, Any], fmt: DocumentFormat) -> str:
    if fmt is DocumentFormat.JSON:
        return json.dumps(document, indent=2, ensure_ascii=False)
    dumped: str = _yaml().safe_dump(document, sort_keys=False, allow_unicode=True)
    return dumped.rstrip("\n")


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


# --- alarms ---------------------------------------------------------------------------------------


def _list_alarms(include_normal: bool) -> None:
    from sqlalchemy import select

    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.alarms import Alarm
    from clusterbrain.production.models import AlarmRecord, AlarmRule

    runtime = _admin_context()
    try:
        with session_scope(runtime.sessions) as session:
            query = select(AlarmRecord, AlarmRule).join(
                AlarmRule, AlarmRule.id == AlarmRecord.rule_id
            )
            if not include_normal:
                query = query.where(AlarmRecord.state != "normal")
            table = Table("alarm", "rule", "device", "priority", "state", "occurrences", "updated")
            for record, rule in session.execute(query.order_by(AlarmRecord.updated_at.desc())):
                alarm = Alarm.from_dict(record.document)
                table.add_row(
                    str(record.id),
                    rule.name,
                    rule.device_id,
                    alarm.priority.value,
                    alarm.state.value,
                    str(alarm.occurrence),
                    f"{record.updated_at:%Y-%m-%d %H:%M:%S}",
                )
            console.print(table)
    finally:
        runtime.close()


IncludeNormal = Annotated[bool, typer.Option(help="Also alarms back to normal.")]


@alarms_app.callback(invoke_without_command=True)
def alarms(ctx: typer.Context, include_normal: IncludeNormal = False) -> None:
    """Alarms; without a command: those that need attention, most recent change first."""
    if ctx.invoked_subcommand is None:
        _list_alarms(include_normal)


@alarms_app.command("list")
def alarms_list(include_normal: IncludeNormal = False) -> None:
    """List alarms that need attention, most recent change first."""
    _list_alarms(include_normal)


def _alarm_table(alarm: AlarmOut) -> Table:
    table = Table("alarm", "rule", "device", "priority", "state", "occurrences", "shelved until")
    table.add_row(
        str(alarm.id),
        alarm.rule_name,
        alarm.device_id,
        alarm.priority,
        alarm.state,
        str(alarm.occurrence),
        f"{alarm.shelved_until:%Y-%m-%d %H:%M} UTC" if alarm.shelved_until else "",
    )
    return table


def _alarm_action(act: Callable[[Session, Principal, AlarmEngine], AlarmOut]) -> None:
    """Run one of the alarm API's lifecycle actions as the platform admin; print the result."""
    from clusterbrain.platform.db import session_scope

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            alarm = act(session, _admin_principal(session), runtime.alarms)
        console.print(_alarm_table(alarm))
    finally:
        runtime.close()


AlarmId = Annotated[int, typer.Argument(help="Alarm id, as `alarms` lists it.")]
Comment = Annotated[str, typer.Option(help="Why, for the audit trail.")]


@alarms_app.command("show")
def alarms_show(alarm_id: AlarmId) -> None:
    """One alarm with its audit trail (the last 50 entries)."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import alarm_api

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            alarm = alarm_api.get_alarm(alarm_id, session, _admin_principal(session))
        console.print(_alarm_table(alarm))
        history = Table("at (UTC)", "event", "user", "from", "to", "detail")
        for entry in alarm.history:
            history.add_row(
                f"{entry['at']:%Y-%m-%d %H:%M:%S}",
                entry["event"],
                entry["user"] or "",
                entry["from"],
                entry["to"],
                entry["detail"],
            )
        console.print(history)
    finally:
        runtime.close()


@alarms_app.command("ack")
def alarms_ack(alarm_id: AlarmId, comment: Comment = "") -> None:
    """Acknowledge an alarm (refused when there is nothing to acknowledge)."""
    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> AlarmOut:
        body = _checked(alarm_api.CommentIn, {"comment": comment}, {"comment": "--comment"})
        return alarm_api.acknowledge(alarm_id, body, session, principal, engine)

    _alarm_action(act)


@alarms_app.command("shelve")
def alarms_shelve(
    alarm_id: AlarmId,
    minutes: Annotated[float, typer.Option(help="Silence the alarm this long.")],
    reason: Comment = "",
) -> None:
    """Shelve an alarm for a while; shelving again moves the end."""
    from datetime import UTC, timedelta

    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> AlarmOut:
        until = datetime.now(UTC) + timedelta(minutes=minutes)
        data = {"until": until, "reason": reason}
        body = _checked(alarm_api.ShelveIn, data, {"reason": "--reason", "until": "--minutes"})
        return alarm_api.shelve(alarm_id, body, session, principal, engine)

    _alarm_action(act)


@alarms_app.command("unshelve")
def alarms_unshelve(alarm_id: AlarmId) -> None:
    """End an alarm's shelf early."""
    from clusterbrain.production import alarm_api

    _alarm_action(lambda s, p, e: alarm_api.unshelve(alarm_id, s, p, e))


@alarms_app.command("suppress")
def alarms_suppress(alarm_id: AlarmId, comment: Comment = "") -> None:
    """Suppress an alarm by design, e.g. during a planned stop."""
    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> AlarmOut:
        body = _checked(alarm_api.CommentIn, {"comment": comment}, {"comment": "--comment"})
        return alarm_api.suppress(alarm_id, body, session, principal, engine)

    _alarm_action(act)


@alarms_app.command("unsuppress")
def alarms_unsuppress(alarm_id: AlarmId) -> None:
    """End an alarm's suppression."""
    from clusterbrain.production import alarm_api

    _alarm_action(lambda s, p, e: alarm_api.unsuppress(alarm_id, s, p, e))


# --- alarm rules ----------------------------------------------------------------------------------

rules_app = typer.Typer(
    help="Alarm rules (a running server picks up changes within a few seconds).",
    no_args_is_help=True,
)
alarms_app.add_typer(rules_app, name="rules")

RULE_OPTIONS = {
    "device_id": "--device",
    "name": "--name",
    "definition": "--definition",
    "priority": "--priority",
    "message": "--message",
    "webhook_url": "--webhook",
    "emails": "--email",
    "enabled": "--enabled",
}
RuleId = Annotated[int, typer.Argument(help="Rule id, as `alarms rules list` shows it.")]
DefinitionOption = Annotated[
    str | None,
    typer.Option(
        "--definition",
        help="The rule document as JSON, or @file with JSON or YAML (see docs/alarms.md).",
    ),
]
PriorityOption = Annotated[
    str | None, typer.Option(help="low, medium, high or critical (default medium).")
]
MessageOption = Annotated[str | None, typer.Option(help="Text of the notification.")]
WebhookOption = Annotated[str | None, typer.Option("--webhook", help="URL to POST alarms to.")]
EmailOption = Annotated[
    list[str] | None, typer.Option("--email", help="Address to e-mail (repeat for several).")
]
EnabledOption = Annotated[
    bool | None, typer.Option("--enabled/--disabled", help="Evaluate the rule or not.")
]


def _given(**options: Any) -> dict[str, Any]:
    """The options the command line gave: not None, and not an empty repeated option."""
    return {name: value for name, value in options.items() if value is not None and value != []}


def _rule_definition(text: str) -> dict[str, Any]:
    """--definition: JSON inline, or @path to a JSON or YAML file."""
    import yaml

    from clusterbrain.platform.errors import InvalidInput

    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"--definition: cannot read {path}: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise InvalidInput(f"--definition: not JSON or YAML: {reason}") from exc
    if not isinstance(document, dict):
        raise InvalidInput('--definition: must be a document like {"type": "threshold", ...}')
    return document


def _rules_table(rules: Iterable[Any]) -> Table:
    table = Table("id", "enterprise", "device", "name", "priority", "enabled", "definition")
    for rule in rules:
        enabled = "yes" if rule.enabled else f"no {rule.disabled_reason}".strip()
        table.add_row(
            str(rule.id),
            str(rule.enterprise_id),
            rule.device_id,
            rule.name,
            rule.priority,
            enabled,
            json.dumps(rule.definition, ensure_ascii=False),
        )
    return table


def _rule_command(act: Callable[[Session, Principal, AlarmEngine], Any]) -> None:
    """Run one of the alarm API's rule operations as the platform admin; print the rule."""
    from clusterbrain.platform.db import session_scope

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            rule = act(session, _admin_principal(session), runtime.alarms)
            if rule is not None:
                console.print(_rules_table([rule]))
    finally:
        runtime.close()


@rules_app.command("list")
def rules_list(
    device: Annotated[str | None, typer.Option(help="Only this device's rules.")] = None,
) -> None:
    """Every alarm rule, or one device's."""
    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, _engine: AlarmEngine) -> None:
        rules = cast(Iterable[Any], alarm_api.list_rules(session, principal))
        console.print(_rules_table(r for r in rules if device in (None, r.device_id)))

    _rule_command(act)


@rules_app.command("add")
def rules_add(
    device: Annotated[str, typer.Option(help="Device whose signals the rule watches.")],
    name: Annotated[str, typer.Option(help="Name shown with its alarms.")],
    definition: DefinitionOption = None,
    priority: PriorityOption = None,
    message: MessageOption = None,
    webhook: WebhookOption = None,
    email: EmailOption = None,
    enabled: EnabledOption = None,
) -> None:
    """Add a rule: threshold, rate of change, no data, state duration or expression."""
    from clusterbrain.platform.errors import InvalidInput
    from clusterbrain.production import alarm_api

    given = _given(
        priority=priority, message=message, webhook_url=webhook, emails=email, enabled=enabled
    )

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> Any:
        if definition is None:
            raise InvalidInput("--definition: required, e.g. --definition @rule.yaml")
        data: dict[str, Any] = {"device_id": device, "name": name}
        data["definition"] = _rule_definition(definition)
        data |= given
        body = _checked(alarm_api.AlarmRuleIn, data, RULE_OPTIONS)
        return alarm_api.create_rule(body, session, principal, engine)

    _rule_command(act)


@rules_app.command("edit")
def rules_edit(
    rule_id: RuleId,
    device: Annotated[str | None, typer.Option(help="Move the rule to another device.")] = None,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    definition: DefinitionOption = None,
    priority: PriorityOption = None,
    message: MessageOption = None,
    webhook: WebhookOption = None,
    email: EmailOption = None,
    enabled: EnabledOption = None,
) -> None:
    """Change what is given and keep the rest; saving re-enables the rule unless --disabled."""
    from clusterbrain.production import alarm_api

    given = _given(
        device_id=device,
        name=name,
        priority=priority,
        message=message,
        webhook_url=webhook,
        emails=email,
        enabled=enabled,
    )

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> Any:
        rule = alarm_api.get_rule(rule_id, session, principal)
        data = alarm_api.AlarmRuleIn.model_validate(rule, from_attributes=True).model_dump()
        data["enabled"] = True  # as the API's PUT: saving a rule disabled by an error retries it
        data |= given
        if definition is not None:
            data["definition"] = _rule_definition(definition)
        body = _checked(alarm_api.AlarmRuleIn, data, RULE_OPTIONS)
        return alarm_api.update_rule(rule_id, body, session, principal, engine)

    _rule_command(act)


@rules_app.command("delete")
def rules_delete(rule_id: RuleId) -> None:
    """Delete a rule and its alarm (the alarm journal keeps its history)."""
    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> None:
        alarm_api.delete_rule(rule_id, session, principal, engine)
        console.print(f"alarm rule {rule_id} deleted")

    _rule_command(act)


@telemetry_app.command("prune")
def telemetry_prune(
    older_than_days: Annotated[int, typer.Option(min=1, help="Delete raw points older than this.")],
    device: Annotated[str | None, typer.Option(help="Only this device.")] = None,
) -> None:
    """Retention: delete old raw points; 1-minute and 1-hour rollups are kept."""
    from datetime import UTC, datetime, timedelta

    from clusterbrain.telemetry.backends import open_store

    store = open_store(Settings())
    try:
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        deleted = store.delete_before(cutoff, device)
        console.print(f"deleted {deleted} raw points older than {cutoff:%Y-%m-%d %H:%M} UTC")
    finally:
        store.close()


# --- edge gateway ---------------------------------------------------------------------------------

GATEWAY_SECRET_ENV = "CB_GATEWAY_SECRET"
FIELD_PROTOCOLS = ("opcua", "modbus")
SIMULATED_FIELD_DEVICES = {
    # protocol: (ready profile, device id) of what `simulate --serve` serves
    "opcua": [("injection_moulding_euromap77", "imm-01"), ("cnc_umati", "cnc-01")],
    "modbus": [("power_meter_modbus", "meter-01"), ("air_compressor_modbus", "compressor-01")],
}


def _serve_protocols(text: str) -> list[str]:
    chosen = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(FIELD_PROTOCOLS))
    if unknown or not chosen:
        raise typer.BadParameter(
            f"{', '.join(unknown) or text!r}: --serve takes opcua, modbus or opcua,modbus",
            param_hint="--serve",
        )
    return [protocol for protocol in FIELD_PROTOCOLS if protocol in chosen]


def _gateway_document(
    gateway_id: str, devices: list[dict[str, object]], uplink_host: str, uplink_port: int
) -> dict[str, object]:
    """A whole gateway.yaml around ``devices``; the secret is read from the environment."""
    return {
        "gateway": {"id": gateway_id, "secret_env": GATEWAY_SECRET_ENV},
        "uplink": {"host": uplink_host, "port": uplink_port},
        "spool": {"path": "spool", "max_mb": 256},
        "metrics": {"host": "127.0.0.1", "port": 9108},
        "health_interval_s": 10,
        "devices": devices,
    }


def _gateway_yaml(document: Mapping[str, object], title: str) -> str:
    import yaml

    body = yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)
    header = (
        f"# {title}\n"
        f"# Run: {GATEWAY_SECRET_ENV}=<the gateway device's secret> "
        "clusterbrain gateway --config gateway.yaml\n"
    )
    return header + body


def _ready_profile(name: str) -> ReadyProfile:
    from clusterbrain.sim.profiles import READY_PROFILES

    if name not in READY_PROFILES:
        known = ", ".join(READY_PROFILES)
        raise typer.BadParameter(
            f"no ready profile {name!r}; one of {known}", param_hint="--profile"
        )
    return READY_PROFILES[name]


def _serve_field_devices(
    settings: Settings,
    protocols: list[str],
    host: str,
    ports: Mapping[str, int],
    duration: float,
    gateway_yaml: Path | None,
    seed: int,
) -> None:
    import asyncio

    try:
        asyncio.run(_serve_field(settings, protocols, host, ports, duration, gateway_yaml, seed))
    except (OSError, RuntimeError) as exc:
        typer.echo(f"error: cannot serve the simulated devices: {exc}", err=True)
        raise typer.Exit(1) from exc


async def _serve_field(
    settings: Settings,
    protocols: list[str],
    host: str,
    ports: Mapping[str, int],
    duration: float,
    gateway_yaml: Path | None,
    seed: int,
) -> None:
    import asyncio
    import sys
    from contextlib import AsyncExitStack, suppress

    from clusterbrain.sim.modbus_server import ModbusSimServer, default_devices
    from clusterbrain.sim.opcua_server import SimOpcUaServer, SimServerConfig

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    endpoints = Table("protocol", "endpoint", "devices", title="Simulated field devices")
    devices: list[dict[str, object]] = []
    async with AsyncExitStack() as servers:
        if "opcua" in protocols:
            config = SimServerConfig(
                host=host,
                port=ports["opcua"],
                seed=seed,
                cache_dir=settings.var_dir / "opcua-cache",
            )
            opcua = await servers.enter_async_context(SimOpcUaServer(config))
            endpoints.add_row("OPC UA", opcua.endpoint, "IMM1 (EUROMAP 77), CNC1 (umati)")
            for name, device_id in SIMULATED_FIELD_DEVICES["opcua"]:
                devices.append(
                    _ready_profile(name).gateway_device(device_id, endpoint=opcua.endpoint)
                )
        if "modbus" in protocols:
            modbus = ModbusSimServer(default_devices(seed), host=host, port=ports["modbus"])
            await servers.enter_async_context(modbus)
            units = ", ".join(f"unit {d.unit_id} {d.name}" for d in modbus.devices)
            endpoints.add_row("Modbus TCP", f"{host}:{ports['modbus']}", units)
            for name, device_id in SIMULATED_FIELD_DEVICES["modbus"]:
                ready = _ready_profile(name)
                devices.append(ready.gateway_device(device_id, host=host, port=ports["modbus"]))
        document = _gateway_document("gw-sim-01", devices, settings.mqtt_host, settings.mqtt_port)
        text = _gateway_yaml(document, "gateway.yaml for the simulated field devices")
        console.print(endpoints)
        if gateway_yaml is not None:
            gateway_yaml.write_text(text, encoding="utf-8")
            console.print(f"gateway configuration written to {gateway_yaml}")
        typer.echo(text)
        typer.echo("serving; Ctrl-C stops" if duration <= 0 else f"serving for {duration:g} s")
        sys.stdout.flush()
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration if duration > 0 else None)


GatewayConfigOption = Annotated[
    Path | None, typer.Option("--config", help="The gateway's configuration (gateway.yaml).")
]


@gateway_app.callback(invoke_without_command=True)
def gateway(ctx: typer.Context, config: GatewayConfigOption = None, verbose: bool = False) -> None:
    """Run the edge gateway with --config gateway.yaml until Ctrl-C or SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        typer.echo(ctx.get_help())
        typer.echo("\nerror: --config gateway.yaml is needed to run the gateway", err=True)
        raise typer.Exit(2)
    _run_gateway(config, verbose)


def _run_gateway(path: Path, verbose: bool) -> None:
    import asyncio

    from clusterbrain.connectors.gateway.config import ConfigError, load_config
    from clusterbrain.connectors.gateway.protocols import register_builtin
    from clusterbrain.connectors.gateway.runner import Gateway

    register_builtin()
    try:
        config = load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    _setup_logging(verbose)
    if not verbose:  # asyncua logs every publish response at INFO
        for noisy in ("asyncua", "pymodbus"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    identity = config.file.gateway
    if identity.secret_env and not identity.resolved_secret():
        typer.echo(
            f"warning: {identity.secret_env} is not set; the uplink logs in without a password",
            err=True,
        )
    try:
        gateway = Gateway(config)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    _print_gateway_banner(gateway)
    asyncio.run(_gateway_until_signal(gateway))
    console.print(
        f"gateway {gateway.gateway_id} stopped; {gateway.readings} readings spooled, "
        f"{gateway.spool.pending} messages left in the spool"
    )


def _print_gateway_banner(gateway: Gateway) -> None:
    file = gateway.config.file
    metrics = (
        f"http://{file.metrics.host}:{file.metrics.port}/metrics" if file.metrics.port else "off"
    )
    table = Table(title=f"gateway {gateway.gateway_id}", show_header=False)
    table.add_row("uplink", f"{file.uplink.host}:{file.uplink.port} (MQTT {file.uplink.protocol})")
    table.add_row("spool", f"{gateway.config.spool_path()} (max {file.spool.max_mb:g} MB)")
    table.add_row("metrics", metrics)
    for device in gateway.config.devices:
        table.add_row(f"device {device.id}", device.protocol)
    console.print(table)


async def _gateway_until_signal(gateway: Gateway) -> None:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await gateway.run(stop)


class SecurityMode(enum.StrEnum):
    NONE = "none"
    SIGN = "sign"
    SIGN_AND_ENCRYPT = "sign-and-encrypt"


@gateway_app.command("discover")
def gateway_discover(
    url: Annotated[str, typer.Argument(help="The server, opc.tcp://host:port[/path].")],
    out: Annotated[
        Path | None, typer.Option(help="Write the draft profile and gateway entry there (YAML).")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="User name login.")] = None,
    password: Annotated[str | None, typer.Option(help="The user's password.")] = None,
    security: Annotated[
        SecurityMode, typer.Option(help="Basic256Sha256 channel: none, sign or sign-and-encrypt.")
    ] = SecurityMode.NONE,
    certificate: Annotated[
        Path, typer.Option(help="The gateway's certificate (made when missing).")
    ] = Path("pki/gateway_cert.der"),
    private_key: Annotated[Path, typer.Option(help="Its private key.")] = Path(
        "pki/gateway_key.pem"
    ),
    server_certificate: Annotated[
        Path | None, typer.Option(help="Pin the server's certificate.")
    ] = None,
    root: Annotated[
        str | None, typer.Option(help="Start below Objects at this browse path, e.g. IMM1.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of the draft profile and device.")] = None,
    max_depth: Annotated[int, typer.Option(min=1, help="Levels to browse.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 5.0,
) -> None:
    """List a server's variables; draft a device profile and the gateway's node list from them."""
    import asyncio

    from clusterbrain.connectors.opcua.browse import discover_draft
    from clusterbrain.connectors.opcua.client import OpcUaConnectError
    from clusterbrain.connectors.opcua.draft import DISCOVERY_COLUMNS

    if password is not None and user is None:
        raise typer.BadParameter("--password needs --user", param_hint="--password")
    if not url.startswith("opc.tcp://"):
        raise typer.BadParameter(f"{url!r} is not opc.tcp://host:port", param_hint="URL")
    channel = _discovery_security(security, certificate, private_key, server_certificate)
    try:
        report = asyncio.run(
            discover_draft(
                url,
                name=name,
                root=root,
                security=channel,
                username=user,
                password=password,
                max_depth=max_depth,
                timeout_s=timeout,
            )
        )
    except OpcUaConnectError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    table = Table(*DISCOVERY_COLUMNS, title=f"variables of {url}")
    for row in report.rows:
        table.add_row(*row)
    console.print(table)
    kept = len(report.profile["tags"])
    console.print(f"{len(report.variables)} variables, {kept} in the draft profile")
    text = _discovery_yaml(url, report.profile, report.nodes, user, channel)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text, encoding="utf-8")
    console.print(f"draft profile and gateway entry written to {out}; edit them before use")


def _discovery_security(
    mode: SecurityMode, certificate: Path, private_key: Path, server_certificate: Path | None
) -> Any:
    """The OpcUaSecurity of a discovery (None for none); makes the gateway's certificate once."""
    if mode is SecurityMode.NONE:
        return None
    import asyncio

    from clusterbrain.connectors.opcua.client import ensure_client_certificate
    from clusterbrain.connectors.opcua.config import OpcUaSecurity

    if not certificate.exists() or not private_key.exists():
        asyncio.run(ensure_client_certificate(certificate, private_key))
        console.print(
            f"made the gateway's certificate {certificate}: the server must trust it "
            "(copy it to the server's trusted certificates)"
        )
    return OpcUaSecurity(
        mode="Sign" if mode is SecurityMode.SIGN else "SignAndEncrypt",
        certificate=certificate,
        private_key=private_key,
        server_certificate=server_certificate,
    )


def _discovery_yaml(
    url: str,
    profile: dict[str, Any],
    nodes: list[dict[str, Any]],
    user: str | None,
    security: Any,
) -> str:
    """The draft profile and a ``devices:`` entry for gateway.yaml with its node list."""
    import yaml

    device_id = re.sub(r"[^A-Za-z0-9_-]+", "-", str(profile["name"])).strip("-_")
    section: dict[str, Any] = {"endpoint": url}
    if security is not None:
        section["security"] = {
            key: str(value) for key, value in security.model_dump(exclude_none=True).items()
        }
    if user is not None:
        section["username"] = user
        section["password"] = "change-me"
    section["nodes"] = nodes
    document = {
        "profile": profile,
        "device": {"id": device_id.ljust(3, "0"), "protocol": "opcua", "opcua": section},
    }
    header = (
        f"# Draft from OPC UA discovery of {url}: rename and drop tags before use.\n"
        "# profile: the device profile (POST /api/v1/device-profiles; node_id is for reference)\n"
        "# device: an entry for the devices: list of gateway.yaml\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@gateway_app.command("profiles")
def gateway_profiles(
    name: Annotated[str | None, typer.Argument(help="One profile: list its tags.")] = None,
    as_yaml: Annotated[
        bool, typer.Option("--yaml", help="Print the profile as the device registry takes it.")
    ] = False,
) -> None:
    """Ready device profiles of machines common in the cluster, with the gateway's map of each."""
    from clusterbrain.sim.profiles import READY_PROFILES

    if name is None:
        table = Table("profile", "protocol", "follows", "tags", "description", "说明")
        for ready in READY_PROFILES.values():
            spec = ready.profile
            table.add_row(
                ready.name,
                ready.protocol,
                ready.standard,
                str(len(spec.tags)),
                spec.description,
                spec.description_zh,
            )
        console.print(table)
        return
    ready = _ready_profile(name)
    if as_yaml:
        import yaml

        typer.echo(yaml.safe_dump(ready.registry_profile(), sort_keys=False, allow_unicode=True))
        return
    console.print(_ready_tags_table(ready))


def _ready_tags_table(ready: ReadyProfile) -> Table:
    where = {point.tag: point.path for point in ready.opcua}
    where.update(
        {
            p.tag: f"{p.table} {p.address}" + (f".{p.bit}" if p.bit is not None else "")
            for p in ready.modbus
        }
    )
    table = Table("tag", "unit", "type", "range", "writable", "at", "description", "说明")
    table.title = f"{ready.name} ({ready.protocol}, {ready.standard})"
    for tag in ready.profile.tags:
        low = "" if tag.min_value is None else f"{tag.min_value:g}"
        high = "" if tag.max_value is None else f"{tag.max_value:g}"
        table.add_row(
            tag.name,
            tag.unit,
            tag.data_type,
            f"{low}..{high}" if low or high else "",
            "yes" if tag.writable else "",
            where.get(tag.name, ""),
            tag.description_en,
            tag.description_zh,
        )
    return table


@gateway_app.command("example")
def gateway_example(
    profile: Annotated[
        list[str], typer.Option(help="Ready profile of a field device; repeat for several.")
    ],
    gateway_id: Annotated[str, typer.Option(help="The gateway's device id.")] = "gw-01",
    endpoint: Annotated[
        str, typer.Option(help="OPC UA server of OPC UA profiles.")
    ] = "opc.tcp://127.0.0.1:4840/clusterbrain/sim",
    host: Annotated[str, typer.Option(help="Modbus TCP host of Modbus profiles.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Modbus TCP port.")] = 5020,
    interval_ms: Annotated[
        float, typer.Option(min=1, help="Sampling/publishing (OPC UA) or poll (Modbus) interval.")
    ] = 1000.0,
) -> None:
    """Print a ready gateway.yaml reading field devices of ready profiles (see `profiles`)."""
    settings = Settings()
    devices: list[dict[str, object]] = []
    counts: dict[str, int] = {}
    for name in profile:
        ready = _ready_profile(name)
        if ready.protocol == "gateway":
            raise typer.BadParameter(
                f"{name} is the gateway's own profile, not a field device", param_hint="--profile"
            )
        counts[ready.device_prefix] = counts.get(ready.device_prefix, 0) + 1
        device_id = f"{ready.device_prefix}-{counts[ready.device_prefix]:02d}"
        devices.append(
            ready.gateway_device(
                device_id, endpoint=endpoint, host=host, port=port, interval_ms=interval_ms
            )
        )
    document = _gateway_document(gateway_id, devices, settings.mqtt_host, settings.mqtt_port)
    typer.echo(_gateway_yaml(document, f"gateway.yaml: {', '.join(profile)}"), nl=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
