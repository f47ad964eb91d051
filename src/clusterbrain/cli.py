"""The ``clusterbrain`` command: demo, serve, ingest, simulate, db, device, admin."""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from clusterbrain.platform.settings import Settings

if TYPE_CHECKING:
    from clusterbrain.api.provision import ProvisionedDevice
    from clusterbrain.api.runtime import Runtime
    from clusterbrain.sim.runner import Simulator

app = typer.Typer(
    help="ClusterBrain: AIoT platform for clusters of small manufacturers.", no_args_is_help=True
)
db_app = typer.Typer(help="Metadata database.", no_args_is_help=True)
device_app = typer.Typer(help="Device registry.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration.", no_args_is_help=True)
telemetry_app = typer.Typer(help="Telemetry store.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(device_app, name="device")
app.add_typer(admin_app, name="admin")
app.add_typer(telemetry_app, name="telemetry")
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
) -> None:
    """Provision a simulated cluster and publish its machines' telemetry over MQTT."""
    from clusterbrain.api.provision import provision_cluster
    from clusterbrain.api.runtime import Runtime

    settings = Settings()
    runtime = Runtime(settings)
    try:
        devices = provision_cluster(runtime, enterprises=enterprises, machines=machines)
    finally:
        runtime.close()
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
    verbose: bool = False,
) -> None:
    """A live simulated cluster on embedded defaults: broker, store, ingest, simulator, API."""
    import uvicorn

    from clusterbrain.api.app import create_app
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
    simulator.start()
    _print_demo_banner(runtime, port, mqtt_port, len(devices), enterprises)
    try:
        uvicorn.run(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    finally:
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


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _parse_moment(text: str, zone: str) -> datetime:
    """ISO 8601; a date or a time without zone is local time of the site's zone."""
    from zoneinfo import ZoneInfo

    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


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
    from clusterbrain.platform.errors import ClusterBrainError
    from clusterbrain.platform.service import bootstrap_admin, principal_of
    from clusterbrain.production import oee_service

    lo, hi = _parse_moment(start, timezone), _parse_moment(end, timezone)
    runtime = _admin_context()
    try:
        with session_scope(runtime.sessions) as session:
            principal = principal_of(bootstrap_admin(session, "admin")[0])
            try:
                calendar, results = oee_service.machine_kpis_by_period(
                    session, runtime.store, principal, machine, lo, hi, period, timezone
                )
            except ClusterBrainError as exc:
                raise typer.BadParameter(exc.detail, param_hint=exc.field) from exc
            table = Table(
                "from", "to", "availability", "effectiveness", "quality", "OEE", "good", "scrap"
            )
            for result in results:
                k, e = result.kpis, result.elements
                table.add_row(
                    f"{result.start.astimezone(calendar.zone):%Y-%m-%d %H:%M}",
                    f"{result.end.astimezone(calendar.zone):%Y-%m-%d %H:%M}",
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


@app.command()
def stops(
    start: Annotated[str, typer.Option("--from", help="Start, ISO 8601 (local time if no zone).")],
    end: Annotated[str, typer.Option("--to", help="End, ISO 8601 (local time if no zone).")],
    machine: Annotated[int | None, typer.Option(help="One machine; all when omitted.")] = None,
    min_minutes: Annotated[float, typer.Option(help="Only stops at least this long.")] = 5.0,
    timezone: Annotated[str, typer.Option(help="Zone of dates without one.")] = "Asia/Shanghai",
) -> None:
    """List stops with their reasons, then the Pareto of time lost by reason."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.errors import ClusterBrainError
    from clusterbrain.platform.models import Machine
    from clusterbrain.platform.service import bootstrap_admin, list_scoped, principal_of
    from clusterbrain.production import downtime_service

    lo, hi = _parse_moment(start, timezone), _parse_moment(end, timezone)
    runtime = _admin_context()
    try:
        with session_scope(runtime.sessions) as session:
            principal = principal_of(bootstrap_admin(session, "admin")[0])
            machines = [m.id for m in list_scoped(session, Machine, principal)]
            ids = [machine] if machine is not None else machines
            table = Table("machine", "state", "from", "minutes", "reason")
            try:
                for machine_id in ids:
                    for stop, reason in downtime_service.machine_stops(
                        session, runtime.store, principal, machine_id, lo, hi, min_minutes * 60
                    ):
                        table.add_row(
                            str(machine_id),
                            stop.state.value,
                            f"{stop.start.astimezone(lo.tzinfo):%Y-%m-%d %H:%M}",
                            f"{stop.seconds / 60:.0f}",
                            str(reason.reason_id) if reason else "awaiting reason",
                        )
                pareto = downtime_service.downtime_pareto(
                    session, runtime.store, principal, lo, hi, min_duration_s=min_minutes * 60
                )
            except ClusterBrainError as exc:
                raise typer.BadParameter(exc.detail, param_hint=exc.field) from exc
            console.print(table)
            summary = Table("reason", "minutes", "stops", "share", "cumulative")
            for row in pareto:
                summary.add_row(
                    row.reason,
                    f"{row.seconds / 60:.0f}",
                    str(row.stops),
                    _percent(row.share),
                    _percent(row.cumulative_share),
                )
            console.print(summary)
    finally:
        runtime.close()


@app.command()
def alarms(
    include_normal: Annotated[bool, typer.Option(help="Also alarms back to normal.")] = False,
) -> None:
    """List alarms that need attention, most recent change first."""
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
