"""A real OPC UA server playing the simulator's machines, for the gateway's tests and demos.

It serves an injection moulding machine laid out in the spirit of OPC 40077 / EUROMAP 77
(machine mode, cycle time and counter, good and scrap parts, injection unit with temperature
zones whose set temperatures can be written) and a CNC machining centre in the spirit of
OPC 40501 / umati (spindle speed and override, feed rate and override, program name, operation
mode, part counter). The values come from the simulator's machine models (``sim.signals``),
stepped in real time, so they behave like the machines the rest of the platform knows; the
layout borrows the companion specifications' names without claiming to implement their types.

Node ids are strings built from the browse path (``ns=2;s=IMM1.Production.LastCycleTime``), so
they stay the same across restarts, which is what a gateway's node list relies on.

Start it from a test with ``async with SimOpcUaServer(SimServerConfig(port=...)) as server``,
or as a process: ``python -m clusterbrain.sim.opcua_server --port 4840 [--secure DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hmac
import importlib.metadata
import logging
import signal
import socket
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from cryptography.x509.oid import ExtendedKeyUsageOID

from clusterbrain.sim.signals import MachineModel, Sample, make_model, relax

NAMESPACE_URI = "urn:clusterbrain:sim:machines"
APPLICATION_URI = "urn:clusterbrain:sim:opcua-server"
SERVER_CERTIFICATE = "server_cert.der"
SERVER_KEY = "server_key.pem"
_log = logging.getLogger(__name__)

SimValue = float | int | bool | str | list[float]

_UNITS: dict[str, tuple[str, str]] = {
    # symbol: (UNECE Recommendation 20 common code, description), as OPC UA Part 8 5.6.3 wants
    "°C": ("CEL", "degree Celsius"),
    "s": ("SEC", "second"),
    "bar": ("BAR", "bar"),
    "kW": ("KWT", "kilowatt"),
    "kWh": ("KWH", "kilowatt hour"),
    "rpm": ("RPM", "revolutions per minute"),
    "%": ("P1", "percent"),
    "mm/min": ("H81", "millimetre per minute"),
    "mm/s": ("C16", "millimetre per second"),
    "pcs": ("C62", "one"),
}
_UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"


def unece_unit_id(common_code: str) -> int:
    """The EUInformation ``UnitId`` of a UNECE common code: its ASCII bytes as one integer.

    >>> unece_unit_id("CEL")
    4408652
    """
    return int.from_bytes(common_code.encode("ascii"), "big")


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """One variable of a simulated machine, relative to the machine object."""

    path: str
    variant: str
    """Built-in type name: Double, UInt32, Int32, Boolean or String."""
    initial: SimValue
    unit: str = ""
    description: str = ""
    eu_range: tuple[float, float] | None = None
    writable: bool = False


class _SimMachine(ABC):
    """Turns one model's samples (and the written setpoints) into the values served."""

    def __init__(self, name: str, model: MachineModel, rng: np.random.Generator) -> None:
        self.name = name
        self.model = model
        self.rng = rng

    @abstractmethod
    def specs(self) -> list[VariableSpec]: ...

    @abstractmethod
    def values(self, sample: Sample, dt: float, written: Mapping[str, Any]) -> dict[str, SimValue]:
        """Served values by path; ``written`` holds the current values of writable variables."""


_IMM_MODES = {"running": 1, "idle": 5, "setup": 4, "down": 0}
"""EUROMAP 77 MachineModeEnumeration: 0 OTHER, 1 AUTOMATIC, 4 SETUP, 5 SLEEP."""
_PRESSURE_SHAPE = (0.1, 0.55, 0.9, 1.0, 0.85, 0.62, 0.6, 0.55, 0.3, 0.05)
_ZONES = 4
_SETPOINT_TAU_S = 20.0
"""How fast a zone follows a new set temperature; far quicker than a real barrel, for demos."""


class _InjectionMoulding(_SimMachine):
    def __init__(self, name: str, model: MachineModel, rng: np.random.Generator) -> None:
        super().__init__(name, model, rng)
        first = model.step(time.time(), 0.0)
        self._base = [round(float(first[f"barrel_zone{i}_temp"])) for i in range(1, _ZONES + 1)]
        self._offsets = [0.0] * _ZONES
        self._cycles = 0
        self._last_parts = int(first["good_count"]) + int(first["scrap_count"])
        self._last_cycle_time = first["cycle_time"]

    def specs(self) -> list[VariableSpec]:
        specs = [
            VariableSpec("MachineInformation/Manufacturer", "String", "ClusterBrain Sim"),
            VariableSpec("MachineInformation/Model", "String", "IMM-SIM"),
            VariableSpec("MachineInformation/SerialNumber", "String", f"{self.name}-0001"),
            VariableSpec(
                "MachineStatus/MachineMode",
                "Int32",
                1,
                description="Machine mode (EUROMAP 77): 0 other, 1 automatic, 4 setup, 5 sleep",
            ),
            VariableSpec(
                "MachineStatus/State",
                "String",
                "running",
                description="Machine state: running, idle, down (unplanned stop) or setup",
            ),
            VariableSpec(
                "MachineStatus/AlarmActive", "Boolean", False, description="An alarm is active"
            ),
            VariableSpec(
                "Production/LastCycleTime",
                "Double",
                0.0,
                "s",
                "Duration of the last moulding cycle",
                (0.0, 180.0),
            ),
            VariableSpec("Production/CycleCounter", "UInt32", 0, "", "Moulding cycles completed"),
            VariableSpec("Production/GoodParts", "UInt32", 0, "pcs", "Good parts this shift"),
            VariableSpec("Production/ScrapParts", "UInt32", 0, "pcs", "Scrap parts this shift"),
            VariableSpec(
                "InjectionUnit/InjectionPressure",
                "Double",
                0.0,
                "bar",
                "Peak injection pressure of the last cycle",
                (0.0, 2500.0),
            ),
            VariableSpec(
                "InjectionUnit/PressureProfile",
                "Double",
                [0.0] * len(_PRESSURE_SHAPE),
                "bar",
                "Injection pressure over the last shot, ten samples",
            ),
            VariableSpec(
                "Mould/Temperature", "Double", 0.0, "°C", "Mould temperature", (0.0, 160.0)
            ),
            VariableSpec("Energy/Power", "Double", 0.0, "kW", "Active power", (0.0, 200.0)),
            VariableSpec("Energy/Energy", "Double", 0.0, "kWh", "Energy meter reading"),
        ]
        for zone in range(1, _ZONES + 1):
            where = f"InjectionUnit/TemperatureZones/Zone{zone}"
            specs.append(
                VariableSpec(
                    f"{where}/ActualTemperature",
                    "Double",
                    float(self._base[zone - 1]),
                    "°C",
                    f"Barrel zone {zone} actual temperature",
                    (0.0, 400.0),
                )
            )
            specs.append(
                VariableSpec(
                    f"{where}/SetTemperature",
                    "Double",
                    float(self._base[zone - 1]),
                    "°C",
                    f"Barrel zone {zone} set temperature",
                    (0.0, 350.0),
                    writable=True,
                )
            )
        return specs

    def values(self, sample: Sample, dt: float, written: Mapping[str, Any]) -> dict[str, SimValue]:
        parts = int(sample["good_count"]) + int(sample["scrap_count"])
        if parts > self._last_parts or sample["cycle_time"] != self._last_cycle_time:
            self._cycles += 1
        self._last_parts, self._last_cycle_time = parts, sample["cycle_time"]
        pressure = float(sample["injection_pressure"])
        out: dict[str, SimValue] = {
            "MachineStatus/MachineMode": _IMM_MODES.get(str(sample["state"]), 0),
            "MachineStatus/State": str(sample["state"]),
            "MachineStatus/AlarmActive": bool(sample["alarm_active"]),
            "Production/LastCycleTime": float(sample["cycle_time"]),
            "Production/CycleCounter": self._cycles,
            "Production/GoodParts": int(sample["good_count"]),
            "Production/ScrapParts": int(sample["scrap_count"]),
            "InjectionUnit/InjectionPressure": pressure,
            "InjectionUnit/PressureProfile": [round(pressure * f, 1) for f in _PRESSURE_SHAPE],
            "Mould/Temperature": float(sample["mould_temp"]),
            "Energy/Power": float(sample["power"]),
            "Energy/Energy": float(sample["energy"]),
        }
        for i in range(_ZONES):
            where = f"InjectionUnit/TemperatureZones/Zone{i + 1}"
            target = float(written.get(f"{where}/SetTemperature", self._base[i])) - self._base[i]
            self._offsets[i] = relax(self._offsets[i], target, dt, _SETPOINT_TAU_S)
            actual = float(sample[f"barrel_zone{i + 1}_temp"]) + self._offsets[i]
            out[f"{where}/ActualTemperature"] = round(actual, 1)
        return out


_CNC_MODES = {"running": "Automatic", "idle": "Automatic", "setup": "Manual", "down": "Other"}
"""Channel modes in the spirit of umati's ChannelModeEnumeration."""
_PROGRAMS = ("O1001_LAMP_BASE.NC", "O2040_HEATSINK.NC", "O3112_BRACKET.NC")


class _Cnc(_SimMachine):
    def __init__(self, name: str, model: MachineModel, rng: np.random.Generator) -> None:
        super().__init__(name, model, rng)
        self._program = str(rng.choice(_PROGRAMS))

    def specs(self) -> list[VariableSpec]:
        return [
            VariableSpec("MachineInformation/Manufacturer", "String", "ClusterBrain Sim"),
            VariableSpec("MachineInformation/Model", "String", "VMC-SIM"),
            VariableSpec("MachineInformation/SerialNumber", "String", f"{self.name}-0001"),
            VariableSpec("MachineStatus/State", "String", "running", description="Machine state"),
            VariableSpec(
                "MachineStatus/AlarmActive", "Boolean", False, description="An alarm is active"
            ),
            VariableSpec(
                "MachineStatus/OperationMode",
                "String",
                "Automatic",
                description="Channel mode: Automatic, Manual or Other",
            ),
            VariableSpec("Spindle/Speed", "Double", 0.0, "rpm", "Spindle speed", (0.0, 24000.0)),
            VariableSpec(
                "Spindle/Load", "Double", 0.0, "%", "Spindle load, percent of rated torque"
            ),
            VariableSpec(
                "Spindle/Override",
                "Double",
                100.0,
                "%",
                "Spindle speed override",
                (50.0, 120.0),
                writable=True,
            ),
            VariableSpec(
                "Feed/FeedRate", "Double", 0.0, "mm/min", "Actual feed rate", (0.0, 30000.0)
            ),
            VariableSpec(
                "Feed/Override",
                "Double",
                100.0,
                "%",
                "Feed rate override",
                (0.0, 120.0),
                writable=True,
            ),
            VariableSpec(
                "Program/ProgramName", "String", self._program, description="Active part program"
            ),
            VariableSpec("Program/PartCounter", "UInt32", 0, "pcs", "Parts finished this shift"),
            VariableSpec(
                "Monitoring/Vibration",
                "Double",
                0.0,
                "mm/s",
                "Spindle housing vibration velocity, RMS",
                (0.0, 50.0),
            ),
            VariableSpec("Energy/Power", "Double", 0.0, "kW", "Active power", (0.0, 80.0)),
        ]

    def values(self, sample: Sample, dt: float, written: Mapping[str, Any]) -> dict[str, SimValue]:
        spindle = float(written.get("Spindle/Override", 100.0)) / 100.0
        feed = float(written.get("Feed/Override", 100.0)) / 100.0
        state = str(sample["state"])
        return {
            "MachineStatus/State": state,
            "MachineStatus/AlarmActive": bool(sample["alarm_active"]),
            "MachineStatus/OperationMode": _CNC_MODES.get(state, "Other"),
            "Spindle/Speed": round(float(sample["spindle_speed"]) * spindle, 1),
            "Spindle/Load": float(sample["spindle_load"]),
            "Feed/FeedRate": round(float(sample["feed_rate"]) * feed, 1),
            "Program/PartCounter": int(sample["part_count"]),
            "Monitoring/Vibration": float(sample["vibration_rms"]),
            "Energy/Power": float(sample["power"]),
        }


@dataclass(frozen=True, slots=True)
class SimServerConfig:
    """What the simulated server offers; ``port`` 0 is not supported (the URL must be known)."""

    host: str = "127.0.0.1"
    port: int = 4840
    secure_dir: Path | None = None
    """Where the server certificate is kept (generated when missing); enables Basic256Sha256."""
    users: Mapping[str, str] = field(default_factory=dict)
    """User names and passwords accepted; empty means no user name login."""
    allow_anonymous: bool = True
    update_interval_s: float | None = 0.5
    """Seconds between model steps; ``None`` serves still values until ``step`` is called."""
    seed: int = 7
    injection_moulding: int = 1
    cnc: int = 1
    max_subscriptions: int = 1000
    """Above this many the server refuses new subscriptions (0 forces clients to poll)."""
    cache_dir: Path | None = None
    """Cache of the standard address space: a start takes a quarter second instead of several."""
    fast_nodes: int = 0
    """Extra Double variables ``Fast/V00000``... that all change every ``fast_interval_s``: load
    for benchmarks (``fast_nodes / fast_interval_s`` changes a second)."""
    fast_interval_s: float = 0.1

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/clusterbrain/sim"


class _PasswordUsers(UserManager):
    """Accepts the configured user names with their passwords, and anonymous when allowed."""

    def __init__(self, users: Mapping[str, str], allow_anonymous: bool) -> None:
        self._users = dict(users)
        self._anonymous = allow_anonymous

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is None:
            return User(role=UserRole.User) if self._anonymous else None
        expected = self._users.get(username)
        if expected is None or password is None:
            return None
        if not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return User(role=UserRole.User, name=username)


async def ensure_server_certificate(directory: Path) -> tuple[Path, Path]:
    """The server's certificate (DER) and key (PEM) in ``directory``, generated when missing."""
    directory.mkdir(parents=True, exist_ok=True)
    certificate, key = directory / SERVER_CERTIFICATE, directory / SERVER_KEY
    await cert_gen.setup_self_signed_certificate(
        key,
        certificate,
        APPLICATION_URI,
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "ClusterBrain", "commonName": "ClusterBrain simulated machines"},
    )
    return certificate, key


async def _init_address_space(server: Server, cache_dir: Path | None) -> None:
    """Load the standard address space, from a shelf made on the first start when cached.

    asyncua only loads a shelf whose exact path is a file; the dbm module Python falls back to
    writes ``.dat``/``.dir`` files next to it, so an empty marker at that path is written once
    the shelf is complete. The lock keeps two servers starting together from writing it twice.
    """
    if cache_dir is None:
        await server.init()
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    shelf = cache_dir / f"aspace-asyncua-{importlib.metadata.version('asyncua')}"
    lock = cache_dir / "aspace.lock"
    handle = await asyncio.to_thread(_acquire, lock)
    try:
        await server.init(shelf)
        if not shelf.is_file():
            shelf.touch()
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _acquire(lock: Path) -> Any:
    handle = lock.open("a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


async def build_address_space_cache(cache_dir: Path) -> None:
    """Make the cache of ``SimServerConfig.cache_dir`` ahead of time (tests do it once)."""
    server = Server()
    await _init_address_space(server, cache_dir)


# asyncua types its values as subclasses of the Python ones (String, Int16, UInt32, DateTime);
# these helpers are the one place that converts.
def _status(name: str | None) -> ua.StatusCode:
    code = StatusCodes.Good if name is None else int(getattr(StatusCodes, name))
    return ua.StatusCode(ua.UInt32(code))


def _node_id(path: str, namespace: int) -> ua.NodeId:
    return ua.NodeId(ua.String(path.replace("/", ".")), ua.Int16(namespace))


def _standard(identifier: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(identifier))


def _ua_time(moment: datetime) -> ua.DateTime:
    return ua.DateTime.fromtimestamp(moment.timestamp(), UTC)


class SimOpcUaServer:
    """The simulated machines behind one OPC UA endpoint."""

    def __init__(self, config: SimServerConfig) -> None:
        self.config = config
        self._server: Server | None = None
        self._ns = 0
        self._nodes: dict[str, Node] = {}
        self._objects: dict[str, Node] = {}
        self._variants: dict[str, ua.VariantType] = {}
        self._writable: dict[str, list[str]] = {}
        self._machines: list[_SimMachine] = []
        self._task: asyncio.Task[None] | None = None
        self._fast_task: asyncio.Task[None] | None = None
        self._fast: list[str] = []
        self._last_step = 0.0

    @property
    def endpoint(self) -> str:
        return self.config.endpoint

    @property
    def namespace_index(self) -> int:
        return self._ns

    @property
    def paths(self) -> list[str]:
        """Browse paths of every served variable, e.g. ``IMM1/Production/GoodParts``."""
        return list(self._nodes)

    def node_id(self, path: str) -> str:
        """The string node id of the variable at ``path``."""
        return self._nodes[path].nodeid.to_string()

    @property
    def fast_paths(self) -> list[str]:
        """Browse paths of the extra fast-changing variables (``SimServerConfig.fast_nodes``)."""
        return list(self._fast)

    async def __aenter__(self) -> SimOpcUaServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        config = self.config
        users = _PasswordUsers(config.users, config.allow_anonymous) if config.users else None
        server = Server(user_manager=users)
        await _init_address_space(server, config.cache_dir)
        server.set_endpoint(config.endpoint)
        server.set_server_name("ClusterBrain simulated machines")
        await server.set_application_uri(APPLICATION_URI)
        await self._secure(server)
        self._ns = await server.register_namespace(NAMESPACE_URI)
        self._machines = self._make_machines()
        for machine in self._machines:
            await self._add_machine(server, machine)
        await self._add_diagnostics(server)
        await self._add_fast(server)
        server.iserver.max_subscriptions = config.max_subscriptions
        await server.start()
        self._server = server
        self._last_step = time.time()
        await self.step()  # first values before anyone reads the initial placeholders
        if config.update_interval_s:
            self._task = asyncio.create_task(self._update_loop(config.update_interval_s))
        if self._fast:
            self._fast_task = asyncio.create_task(self._fast_loop(config.fast_interval_s))

    async def stop(self) -> None:
        for task in (self._task, self._fast_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._fast_task = None
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def step(self) -> None:
        """Advance every machine to now and publish the new values."""
        now = time.time()
        dt, self._last_step = max(0.0, now - self._last_step), now
        stamp = datetime.fromtimestamp(now, UTC)
        for machine in self._machines:
            written = {
                path: self.value(f"{machine.name}/{path}") for path in self._writable[machine.name]
            }
            values = machine.values(machine.model.step(now, dt), dt, written)
            for path, value in values.items():
                await self._publish(f"{machine.name}/{path}", value, stamp)
        await self._publish("SimDiagnostics/Subscriptions", self.subscription_count(), stamp)

    async def set_value(
        self,
        path: str,
        value: SimValue | None,
        *,
        status: str | None = None,
        source_time: datetime | None = None,
    ) -> None:
        """Serve ``value`` at ``path`` with a status code name (``"BadSensorFailure"``) and time."""
        stamp = source_time or datetime.now(UTC)
        await self._publish(path, value, stamp, _status(status))

    def subscription_count(self) -> int:
        """Subscriptions the server holds right now, over all sessions."""
        if self._server is None:
            return 0
        return len(self._server.iserver.subscription_service.subscriptions)

    async def _secure(self, server: Server) -> None:
        config = self.config
        policies = [ua.SecurityPolicyType.NoSecurity]
        if config.secure_dir is not None:
            certificate, key = await ensure_server_certificate(config.secure_dir)
            await server.load_certificate(certificate)
            await server.load_private_key(key)
            policies += [
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ua.SecurityPolicyType.Basic256Sha256_Sign,
            ]
        server.set_security_policy(policies)
        tokens: list[type] = [ua.AnonymousIdentityToken] if config.allow_anonymous else []
        if config.users:
            tokens.append(ua.UserNameIdentityToken)
        server.set_identity_tokens(tokens)

    def _make_machines(self) -> list[_SimMachine]:
        machines: list[_SimMachine] = []
        kinds = [
            ("IMM", "injection_moulding", _InjectionMoulding, self.config.injection_moulding),
            ("CNC", "cnc", _Cnc, self.config.cnc),
        ]
        for prefix, kind, cls, count in kinds:
            for number in range(1, count + 1):
                rng = np.random.default_rng([self.config.seed, len(machines)])
                model_rng, own_rng = rng.spawn(2)
                machines.append(cls(f"{prefix}{number}", make_model(kind, model_rng), own_rng))
        return machines

    async def _folder(self, server: Server, path: str) -> Node:
        """The object at ``path`` (``IMM1/Production``), made with its parents when missing."""
        if path in self._objects:
            return self._objects[path]
        parent_path, _, name = path.rpartition("/")
        parent = await self._folder(server, parent_path) if parent_path else server.nodes.objects
        node = await parent.add_object(_node_id(path, self._ns), name)
        self._objects[path] = node
        return node

    async def _add_machine(self, server: Server, machine: _SimMachine) -> None:
        self._writable[machine.name] = []
        for spec in machine.specs():
            await self._add_variable(server, f"{machine.name}/{spec.path}", spec)
            if spec.writable:
                self._writable[machine.name].append(spec.path)

    async def _add_diagnostics(self, server: Server) -> None:
        spec = VariableSpec(
            "Subscriptions", "UInt32", 0, description="Subscriptions the server holds"
        )
        await self._add_variable(server, "SimDiagnostics/Subscriptions", spec)

    async def _add_fast(self, server: Server) -> None:
        width = max(5, len(str(self.config.fast_nodes - 1)))
        for index in range(self.config.fast_nodes):
            path = f"Fast/V{index:0{width}d}"
            await self._add_variable(server, path, VariableSpec(path, "Double", float(index)))
            self._fast.append(path)

    async def _fast_loop(self, interval: float) -> None:
        """Every fast variable gets a new value each interval: ``tick + index / 1000``."""
        tick = 0
        while True:
            started = time.monotonic()
            tick += 1
            stamp = datetime.now(UTC)
            try:
                for index, path in enumerate(self._fast):
                    await self._publish(path, tick + index / 1000, stamp)
            except Exception:
                _log.exception("fast variables update failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def _add_variable(self, server: Server, path: str, spec: VariableSpec) -> None:
        parent_path, _, name = path.rpartition("/")
        parent = await self._folder(server, parent_path)
        node_id = _node_id(path, self._ns)
        variant = getattr(ua.VariantType, spec.variant)
        node = await parent.add_variable(node_id, name, spec.initial, variant)
        if spec.description:
            await node.write_attribute(
                AttributeIds.Description,
                ua.DataValue(ua.Variant(ua.LocalizedText(spec.description, "en"))),
            )
        if spec.unit:
            await self._add_unit(node, path, spec.unit)
        if spec.eu_range is not None:
            low, high = spec.eu_range
            await node.add_property(
                _node_id(f"{path}/EURange", self._ns),
                ua.QualifiedName("EURange", 0),
                ua.Range(Low=low, High=high),
                ua.VariantType.ExtensionObject,
                _standard(ObjectIds.Range),
            )
        if spec.writable:
            await node.set_writable()
        self._nodes[path] = node
        self._variants[path] = variant

    async def _add_unit(self, node: Node, path: str, unit: str) -> None:
        code, description = _UNITS.get(unit, ("", unit))
        info = ua.EUInformation(
            NamespaceUri=_UNECE_URI,
            UnitId=ua.Int32(unece_unit_id(code)) if code else ua.Int32(-1),
            DisplayName=ua.LocalizedText(unit, "en"),
            Description=ua.LocalizedText(description, "en"),
        )
        await node.add_property(
            _node_id(f"{path}/EngineeringUnits", self._ns),
            ua.QualifiedName("EngineeringUnits", 0),
            info,
            ua.VariantType.ExtensionObject,
            _standard(ObjectIds.EUInformation),
        )

    def value(self, path: str) -> Any:
        """The value served at ``path`` now (a client may have written it)."""
        assert self._server is not None
        data_value = self._server.read_attribute_value(self._nodes[path].nodeid)
        return data_value.Value.Value if data_value.Value is not None else None

    async def _publish(
        self,
        path: str,
        value: SimValue | None,
        stamp: datetime,
        status: ua.StatusCode | None = None,
    ) -> None:
        assert self._server is not None
        # An empty value only goes with a bad status, which the server stores as a null variant.
        variant = ua.Variant() if value is None else ua.Variant(value, self._variants[path])
        data_value = ua.DataValue(
            variant,
            StatusCode=status or _status(None),
            SourceTimestamp=_ua_time(stamp),
            ServerTimestamp=_ua_time(datetime.now(UTC)),
        )
        await self._server.write_attribute_value(self._nodes[path].nodeid, data_value)

    async def _update_loop(self, interval: float) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.step()
            except Exception:
                _log.exception("simulation step failed")
            await asyncio.sleep(max(0.05, interval - (time.monotonic() - started)))


def _parse_args(argv: Sequence[str] | None) -> SimServerConfig:
    parser = argparse.ArgumentParser(
        prog="python -m clusterbrain.sim.opcua_server",
        description="OPC UA server of simulated machines (injection moulding, CNC).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4840)
    parser.add_argument("--secure", type=Path, metavar="DIR", help="certificate folder")
    parser.add_argument(
        "--user", action="append", default=[], metavar="NAME:PASSWORD", help="repeatable"
    )
    parser.add_argument("--no-anonymous", action="store_true")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between steps")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--imm", type=int, default=1, help="injection moulding machines")
    parser.add_argument("--cnc", type=int, default=1, help="CNC machining centres")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="address space cache folder")
    parser.add_argument(
        "--fast", type=int, default=0, metavar="N", help="extra fast-changing variables (Fast/)"
    )
    parser.add_argument(
        "--fast-interval", type=float, default=0.1, help="seconds between their changes"
    )
    args = parser.parse_args(argv)
    if any(":" not in entry for entry in args.user):
        parser.error("--user takes NAME:PASSWORD")
    users = dict(entry.split(":", 1) for entry in args.user)
    return SimServerConfig(
        host=args.host,
        port=args.port,
        secure_dir=args.secure,
        users=users,
        allow_anonymous=not args.no_anonymous,
        update_interval_s=args.interval or None,
        seed=args.seed,
        injection_moulding=args.imm,
        cnc=args.cnc,
        cache_dir=args.cache,
        fast_nodes=args.fast,
        fast_interval_s=args.fast_interval,
    )


async def _serve(config: SimServerConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with SimOpcUaServer(config) as server:
        print(f"ready {server.endpoint}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    config = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
