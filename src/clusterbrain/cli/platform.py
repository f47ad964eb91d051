"""Running and administering the platform: serve, ingest, db, device, admin, telemetry."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from clusterbrain.cli.common import (
    _admin_context,
    _admin_principal,
    _refusals,
    _setup_logging,
    _wait_for_signal,
    console,
)
from clusterbrain.platform.settings import Settings

db_app = typer.Typer(help="Metadata database.", no_args_is_help=True)
device_app = typer.Typer(help="Device registry.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration.", no_args_is_help=True)
telemetry_app = typer.Typer(help="Telemetry store.", no_args_is_help=True)


# --- database -------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the metadata database to the newest schema."""
    from clusterbrain.platform.migrate import upgrade

    settings = Settings()
    upgrade(settings.resolved_database_url())
    console.print(f"[green]metadata database is up to date[/] ({settings.resolved_database_url()})")


# --- serving --------------------------------------------------------------------------------------


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


# --- devices --------------------------------------------------------------------------------------


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


# --- telemetry store ------------------------------------------------------------------------------


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
