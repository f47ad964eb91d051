"""Simulated clusters: simulate (with --serve, field devices for a gateway) and demo."""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clusterbrain.cli.common import _setup_logging, _wait_for_signal, console
from clusterbrain.cli.gateway import _gateway_document, _gateway_yaml, _ready_profile
from clusterbrain.platform.settings import Settings

if TYPE_CHECKING:
    from clusterbrain.api.provision import ProvisionedDevice
    from clusterbrain.api.runtime import Runtime
    from clusterbrain.sim.runner import Simulator


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


# --- the demo -------------------------------------------------------------------------------------


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


# --- field devices for a gateway ------------------------------------------------------------------

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
