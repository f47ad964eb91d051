"""An edge gateway in the demo: simulated field devices read by a real gateway, in-process.

For the demo's first enterprise this starts the simulated Modbus server (a feeder power meter
and a screw compressor behind one TCP port) and registers an edge gateway device (its profile
has the gateway's health tags) with one field device behind it, whose profile is made from the
tags the simulator serves (the compressor's setpoint and switches writable, with their ranges).
The :class:`Gateway` runs on its own thread and event loop and publishes to the demo's broker
with the gateway's own credentials, exactly as ``clusterbrain gateway`` would on an edge box.

A simulated OPC UA server is started too, as a child process (its first start builds the
address space cache, several seconds of CPU that should not slow the demo's own process), so
that discovery can be tried from the console. Nothing here blocks the demo for long: the OPC UA
server becomes reachable a little after the API.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from clusterbrain.api.runtime import Runtime
from clusterbrain.connectors.gateway.config import parse_config
from clusterbrain.connectors.gateway.protocols import register_builtin
from clusterbrain.connectors.gateway.runner import HEALTH_TAGS, Gateway
from clusterbrain.devices import schemas
from clusterbrain.devices import service as devices
from clusterbrain.devices.models import Device, DeviceProfile
from clusterbrain.devices.spec import TagKind
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import Enterprise, Role, User
from clusterbrain.platform.service import principal_of
from clusterbrain.platform.tenancy import Principal
from clusterbrain.sim.modbus_server import BackgroundServer, SimPoint

log = logging.getLogger(__name__)

GATEWAY_ID = "e1-gw-01"
FIELD_DEVICE_ID = "e1-compressor-room"
GATEWAY_PROFILE = "edge_gateway"
FIELD_PROFILE = "compressor_room_modbus"
POLL_INTERVAL_MS = 1000.0
HEALTH_INTERVAL_S = 2.0
"""Often enough that the console's gateway page looks live."""
OPCUA_STEP_S = 1.0
STOP_TIMEOUT_S = 20.0
PR_SET_PDEATHSIG = 1

UNITS = {
    "voltage": "V",
    "current": "A",
    "active_power": "kW",
    "reactive_power": "kvar",
    "frequency": "Hz",
    "energy": "kWh",
    "discharge_pressure": "bar",
    "pressure_setpoint": "bar",
    "oil_temp": "°C",
    "motor_current": "A",
    "load_hours": "h",
    "power": "kW",
    "vibration_rms": "mm/s",
}
"""Units of the simulated Modbus points (the register map itself knows none)."""


def unit_of(tag: str) -> str:
    """The unit of a simulated point, by its name or the start of it.

    >>> unit_of("voltage_l2"), unit_of("energy_total_kwh"), unit_of("running")
    ('V', 'kWh', '')
    """
    if tag in UNITS:
        return UNITS[tag]
    return next((unit for prefix, unit in UNITS.items() if tag.startswith(prefix)), "")


def field_tag(point: SimPoint) -> schemas.TagIn:
    """A profile tag for a point the simulator serves; writable ones keep their range.

    >>> tag = field_tag(SimPoint("pressure_setpoint", "holding", 20, scale=0.01, writable=True,
    ...                          min_value=5, max_value=10))
    >>> tag.data_type.value, tag.writable, tag.min_value, tag.max_value, tag.unit
    ('float', True, 5.0, 10.0, 'bar')
    >>> field_tag(SimPoint("running", "coil", 0, "bool", writable=True)).data_type.value
    'bool'
    """
    bit = point.table in ("coil", "discrete_input") or point.type == "bits"
    return schemas.TagIn(
        name=point.name,
        unit="" if bit else unit_of(point.name),
        data_type=TagKind.BOOL if bit else TagKind.FLOAT,
        min_value=point.min_value,
        max_value=point.max_value,
        writable=point.writable,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Registered:
    enterprise_id: int
    gateway_secret: str


def register(runtime: Runtime, points: list[SimPoint]) -> Registered | None:
    """The gateway and its field device in the first enterprise, set up by its administrator
    (as an engineer would through the console); a fresh secret on every start."""
    with session_scope(runtime.sessions) as session:
        enterprise_id = session.scalar(select(Enterprise.id).order_by(Enterprise.id).limit(1))
        admin = session.scalar(
            select(User)
            .where(User.enterprise_id == enterprise_id, User.role == Role.ENTERPRISE_ADMIN)
            .order_by(User.id)
            .limit(1)
        )
        if enterprise_id is None or admin is None:
            return None
        principal = principal_of(admin)
        health = [schemas.TagIn(name=tag, data_type=TagKind.FLOAT) for tag in HEALTH_TAGS]
        gateway_profile = _profile(
            session, principal, enterprise_id, GATEWAY_PROFILE, "Edge gateway health", health
        )
        field_profile = _profile(
            session,
            principal,
            enterprise_id,
            FIELD_PROFILE,
            "Compressor room read over Modbus TCP: feeder meter (unit 1), compressor (unit 2)",
            [field_tag(point) for point in points],
        )
        secret = _device(
            session, runtime, principal, GATEWAY_ID, gateway_profile, "Compressor room gateway"
        )
        _device(
            session,
            runtime,
            principal,
            FIELD_DEVICE_ID,
            field_profile,
            "Compressor room",
            GATEWAY_ID,
        )
    runtime.directory.invalidate()
    return Registered(enterprise_id, secret)


def _profile(
    session: Session,
    principal: Principal,
    enterprise_id: int,
    name: str,
    description: str,
    tags: list[schemas.TagIn],
) -> int:
    existing = session.scalar(
        select(DeviceProfile.id).where(
            DeviceProfile.enterprise_id == enterprise_id, DeviceProfile.name == name
        )
    )
    if existing is not None:
        return existing
    data = schemas.ProfileIn(name=name, description=description, tags=tags)
    return devices.create_profile(session, principal, data).id


def _device(
    session: Session,
    runtime: Runtime,
    principal: Principal,
    device_id: str,
    profile_id: int,
    name: str,
    gateway_id: str | None = None,
) -> str:
    """Register the device, or give it a new secret when it exists (the old one is not kept)."""
    if session.get(Device, device_id) is None:
        data = schemas.DeviceIn(
            profile_id=profile_id, device_id=device_id, name=name, gateway_id=gateway_id
        )
        _, secret = devices.register_device(session, principal, data, runtime.broker_auth)
    else:
        _, secret = devices.rotate_secret(session, principal, device_id, runtime.broker_auth)
    return secret


def gateway_document(
    secret: str, mqtt_port: int, modbus: dict[str, object], spool: Path
) -> dict[str, Any]:
    """The gateway.yaml of the demo's gateway (the embedded broker speaks MQTT 3.1.1 only)."""
    return {
        "gateway": {"id": GATEWAY_ID, "secret": secret},
        "uplink": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "protocol": "3.1.1",
            "publish_interval_s": 0.5,
            "reconnect_max_s": 5,
        },
        "spool": {"path": str(spool), "max_mb": 64},
        "metrics": {"port": 0},
        "health_interval_s": HEALTH_INTERVAL_S,
        "devices": [{"id": FIELD_DEVICE_ID, "protocol": "modbus", "modbus": modbus}],
    }


class _GatewayThread:
    """The gateway on its own event loop, as ``clusterbrain gateway`` runs it."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-gateway", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await self.gateway.run(self._stop)

        try:
            self._loop.run_until_complete(main())
        except Exception:
            log.exception("the demo gateway stopped with an error")
        finally:
            self._ready.set()
            self._loop.close()

    def stop(self) -> None:
        stop = self._stop
        if stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(STOP_TIMEOUT_S)


def _die_with_parent() -> None:
    """In the child, before it runs: ask Linux to end it when the demo ends.

    uvicorn re-raises SIGTERM once it has shut down, so the demo's own clean-up does not run
    after a SIGTERM; the child must not outlive it.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_opcua(var_dir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log_path = var_dir / "opcua-sim.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "clusterbrain.sim.opcua_server",
                "--port", str(port), "--cache", str(var_dir / "opcua-cache"),
                "--interval", str(OPCUA_STEP_S),
            ],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    return process, f"opc.tcp://127.0.0.1:{port}/clusterbrain/sim", log_path


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def start_demo_gateway(
    runtime: Runtime, *, enabled: bool = True, opcua: bool = True
) -> Callable[[], None]:
    """Start the demo's gateway (and the simulators it reads); returns what stops it all."""
    if not enabled:
        return lambda: None
    settings = runtime.settings
    var_dir = settings.var_dir / "gateway"
    var_dir.mkdir(parents=True, exist_ok=True)
    stops: list[Callable[[], None]] = []

    def stop_all() -> None:
        for stop in reversed(stops):
            try:
                stop()
            except Exception:
                log.exception("stopping a part of the demo gateway failed")
        stops.clear()

    try:
        if opcua:
            process, endpoint, opcua_log = _start_opcua(var_dir)
            stops.append(lambda: _stop_process(process))
            log.info("simulated OPC UA server (for discovery): %s (log %s)", endpoint, opcua_log)
        modbus = BackgroundServer(port=free_port(), seed=5)
        server = modbus.start()
        stops.append(modbus.stop)
        points = [point for device in server.devices for point in device.points]
        registered = register(runtime, points)
        if registered is None:
            log.warning("no enterprise to put the demo gateway in")
            stop_all()
            return lambda: None
        register_builtin()
        document = gateway_document(
            registered.gateway_secret,
            settings.mqtt_port,
            server.gateway_config(POLL_INTERVAL_MS),
            (var_dir / "spool").resolve(),
        )
        config = parse_config(yaml.safe_dump(document), var_dir / "gateway.yaml")
        running = _GatewayThread(Gateway(config))
        running.start()
        stops.append(running.stop)
    except Exception:
        stop_all()
        raise
    log.info(
        "demo edge gateway %s reads %s (simulated Modbus at 127.0.0.1:%d)",
        GATEWAY_ID,
        FIELD_DEVICE_ID,
        server.port,
    )
    return stop_all
