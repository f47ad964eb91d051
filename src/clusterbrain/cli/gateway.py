"""The edge gateway: run it, discover OPC UA servers, ready profiles, an example gateway.yaml."""

from __future__ import annotations

import enum
import logging
import re
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clusterbrain.cli.common import _setup_logging, console
from clusterbrain.platform.settings import Settings

if TYPE_CHECKING:
    from clusterbrain.connectors.gateway.runner import Gateway
    from clusterbrain.sim.profiles import ReadyProfile

gateway_app = typer.Typer(
    help="Edge gateway: run it (--config gateway.yaml), discover OPC UA servers, ready profiles."
)

GATEWAY_SECRET_ENV = "CB_GATEWAY_SECRET"


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
    url: Annotated[
        str, typer.Argument(help="The server, opc.tcp://host:port or opc.tcp://host:port/path.")
    ],
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
