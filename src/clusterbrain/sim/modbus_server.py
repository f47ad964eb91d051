"""Simulated Modbus TCP field devices on a real pymodbus server.

Two devices behind one TCP port, as behind a serial-to-TCP gateway in a workshop:

- unit 1, ``feeder-meter``: a three-phase power meter (phase voltages and currents, active and
  reactive power, power factor, frequency, the energy counter as a scaled uint32 in the "CDAB"
  word order many meters use, and the same counter as a float64);
- unit 2, ``air-compressor``: a screw compressor controller (discharge pressure, oil temperature,
  motor current, a status word with bit flags, a load-hours counter, a writable pressure setpoint
  with its own limits, a writable running coil and remote-enable bit, discrete inputs).

The physics is the factory simulator's (``signals.PowerMeterModel`` and ``AirCompressorModel``),
stepped on wall-clock time whenever a client reads. Every served value is described by a
``SimPoint``; ``ModbusSimServer.gateway_config`` turns them into the gateway's Modbus
configuration, so what the simulator serves and what the gateway reads cannot drift apart.

This module sits in ``sim`` and may not import the connector; it keeps a small codec of its
own, which also makes the connector's tests a comparison of two independent implementations.

Run one for a subprocess or by hand::

    python -m clusterbrain.sim.modbus_server --port 5020
    python -m clusterbrain.sim.modbus_server --print-config --port 5020
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import ClassVar

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from clusterbrain.sim.signals import AirCompressorModel, PowerMeterModel, Sample, ou_step

SimValue = float | int | bool

_WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}
_WIDTH.update({"bool": 1, "bits": 1})
_STRUCT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}
_INT_RANGE = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
_TABLE_OF_FUNCTION = {1: "coil", 5: "coil", 15: "coil", 2: "discrete_input", 4: "input"}
_TABLE_OF_FUNCTION.update({code: "holding" for code in (3, 6, 16, 22, 23)})
_BIT_TABLES = ("coil", "discrete_input")
_TABLES = ("coil", "discrete_input", "holding", "input")
"""In the order pymodbus takes a device's four separate blocks."""


@dataclass(frozen=True, slots=True)
class SimPoint:
    """One value a simulated device serves: where it is and how it is encoded."""

    name: str
    table: str
    address: int
    type: str = "uint16"
    scale: float = 1.0
    word_order: str | None = None
    """None: the device's default."""
    byte_order: str | None = None
    bit: int | None = None
    writable: bool = False
    min_value: float | None = None
    max_value: float | None = None

    @property
    def end(self) -> int:
        return self.address + _WIDTH[self.type]

    def config(self) -> dict[str, object]:
        """This point as a tag of the gateway's Modbus configuration (defaults left out)."""
        entry: dict[str, object] = {
            "tag": self.name,
            "table": self.table,
            "address": self.address,
            "type": self.type,
        }
        optional = {
            "scale": (self.scale, 1.0),
            "word_order": (self.word_order, None),
            "byte_order": (self.byte_order, None),
            "bit": (self.bit, None),
            "writable": (self.writable, False),
            "min_value": (self.min_value, None),
            "max_value": (self.max_value, None),
        }
        entry.update({key: value for key, (value, default) in optional.items() if value != default})
        return entry


def encode_point(point: SimPoint, value: SimValue, word_order: str, byte_order: str) -> list[int]:
    """Registers for a number point: ``raw = value / scale``, integers rounded and clamped.

    Clamped because a simulated excursion must not take the server down; a real device
    saturates its registers the same way.

    >>> encode_point(SimPoint("p", "holding", 0, scale=0.01), 7.5, "big", "big")
    [750]
    >>> encode_point(SimPoint("e", "input", 0, "uint32"), 65536, "little", "big")
    [0, 1]
    """
    raw: float | int = float(value) / point.scale
    if point.type in _INT_RANGE:
        lo, hi = _INT_RANGE[point.type]
        raw = min(hi, max(lo, round(raw)))
    data = struct.pack(">" + _STRUCT[point.type], raw)
    pairs = [data[i : i + 2] for i in range(0, len(data), 2)]
    if (point.byte_order or byte_order) == "little":
        pairs = [pair[::-1] for pair in pairs]
    if (point.word_order or word_order) == "little":
        pairs.reverse()
    return [int.from_bytes(pair, "big") for pair in pairs]


def decode_point(point: SimPoint, words: Sequence[int], word_order: str, byte_order: str) -> float:
    """The inverse of ``encode_point``, for the values clients write.

    >>> decode_point(SimPoint("p", "holding", 0, scale=0.01), [750], "big", "big")
    7.5
    """
    pairs = [int(word).to_bytes(2, "big") for word in words]
    if (point.word_order or word_order) == "little":
        pairs.reverse()
    if (point.byte_order or byte_order) == "little":
        pairs = [pair[::-1] for pair in pairs]
    raw = struct.unpack(">" + _STRUCT[point.type], b"".join(pairs))[0]
    return round(float(raw) * point.scale, 9)


def pack_bits(bits: Sequence[bool]) -> list[int]:
    """Bits into 16-bit words, bit 0 first: how pymodbus keeps coils and discrete inputs.

    >>> pack_bits([True, False, True] + [False] * 13)
    [5]
    """
    words = []
    for start in range(0, len(bits), 16):
        words.append(sum(1 << i for i, bit in enumerate(bits[start : start + 16]) if bit))
    return words


class SimulatedDevice(ABC):
    """One Modbus unit: what it serves (``points``) and how its values move."""

    kind: ClassVar[str]
    points: ClassVar[tuple[SimPoint, ...]]
    word_order: ClassVar[str] = "big"
    byte_order: ClassVar[str] = "big"
    MIN_STEP_S: ClassVar[float] = 0.05
    """Reads closer together than this see the same values, so fast polling costs no physics."""

    def __init__(self, name: str, unit_id: int, rng: np.random.Generator) -> None:
        self.name = name
        self.unit_id = unit_id
        self._rng = rng
        self._last_step: float | None = None
        self._fresh = False
        self._values: dict[str, SimValue] = {}

    def values(self, now: float) -> dict[str, SimValue]:
        """Every point's value at ``now`` (epoch seconds), stepping the physics when due."""
        last = self._last_step
        if last is None or not self._fresh or now - last >= self.MIN_STEP_S:
            self._values = self._step(now, 0.0 if last is None else max(0.0, now - last))
            self._last_step, self._fresh = now, True
        return self._values

    @abstractmethod
    def _step(self, now: float, dt: float) -> dict[str, SimValue]:
        """Advance by ``dt`` seconds and return the value of every point."""

    def write(self, name: str, value: SimValue) -> int | None:
        """Take a written value; a Modbus exception code when the device refuses it."""
        return int(ExcCodes.ILLEGAL_ADDRESS)

    def config(self, poll_interval_ms: float = 1000) -> dict[str, object]:
        """This device as the gateway's configuration of one unit."""
        return {
            "name": self.name,
            "unit_id": self.unit_id,
            "poll_interval_ms": poll_interval_ms,
            "word_order": self.word_order,
            "byte_order": self.byte_order,
            "tags": [point.config() for point in self.points],
        }


class PowerMeterDevice(SimulatedDevice):
    """Three-phase meter on the workshop feeder; float32 in CDAB word order, like many meters."""

    kind = "power_meter"
    word_order = "little"
    points = (
        *(SimPoint(f"voltage_l{p}", "input", 2 * (p - 1), "float32") for p in (1, 2, 3)),
        *(SimPoint(f"current_l{p}", "input", 6 + 2 * (p - 1), "float32") for p in (1, 2, 3)),
        SimPoint("active_power", "input", 12, "float32"),
        SimPoint("power_factor", "input", 14, "int16", scale=0.001),
        SimPoint("frequency", "input", 15, "uint16", scale=0.01),
        SimPoint("energy_kwh", "input", 16, "uint32", scale=0.01),
        SimPoint("reactive_power", "input", 18, "int32", scale=0.001, word_order="big"),
        SimPoint("energy_total_kwh", "input", 100, "float64", word_order="big"),
    )
    ENERGY_AT_START_KWH = 123_456.78
    """A meter that has been in service for years: the counter needs both of its words."""

    def __init__(self, name: str, unit_id: int, rng: np.random.Generator) -> None:
        model_rng, self._noise_rng = rng.spawn(2)
        super().__init__(name, unit_id, rng)
        self._model = PowerMeterModel(model_rng)
        self._frequency_noise = 0.0

    def _step(self, now: float, dt: float) -> dict[str, SimValue]:
        sample: Sample = self._model.step(now, dt)
        z = float(self._noise_rng.standard_normal())
        self._frequency_noise = ou_step(self._frequency_noise, dt, 60.0, 0.03, z)
        power, pf = float(sample["active_power"]), float(sample["power_factor"])
        values: dict[str, SimValue] = {
            key: float(value) for key, value in sample.items() if key != "energy_kwh"
        }
        energy = self.ENERGY_AT_START_KWH + float(sample["energy_kwh"])
        values["energy_kwh"] = energy
        values["energy_total_kwh"] = energy
        values["frequency"] = 50.0 + self._frequency_noise
        values["reactive_power"] = power * math.tan(math.acos(pf))
        return values


class AirCompressorDevice(SimulatedDevice):
    """Screw compressor controller: scaled integers in holding registers, flags, a setpoint."""

    kind = "air_compressor"
    points = (
        SimPoint("discharge_pressure", "holding", 0, "uint16", scale=0.01),
        SimPoint("oil_temp", "holding", 1, "int16", scale=0.1),
        SimPoint("motor_current", "holding", 2, "uint16", scale=0.1),
        SimPoint("loaded", "holding", 3, "bits", bit=0),
        SimPoint("alarm_active", "holding", 3, "bits", bit=3),
        SimPoint("load_hours", "holding", 4, "uint32", scale=0.1),
        SimPoint("power", "holding", 6, "float32"),
        SimPoint("vibration_rms", "holding", 8, "float32", byte_order="little"),
        SimPoint(
            "pressure_setpoint",
            "holding",
            20,
            "uint16",
            scale=0.01,
            writable=True,
            min_value=5,
            max_value=10,
        ),
        SimPoint("remote_enable", "holding", 21, "bits", bit=0, writable=True),
        SimPoint("running", "coil", 0, "bool", writable=True),
        SimPoint("high_oil_temp", "discrete_input", 0, "bool"),
        SimPoint("pressure_high", "discrete_input", 1, "bool"),
    )
    SETPOINT_RANGE_BAR = (4.0, 12.0)
    """What the controller itself accepts; the gateway's own limits (5..10) are narrower."""
    LOAD_HOURS_AT_START = 8765.4
    HIGH_OIL_TEMP_C = 100.0

    def __init__(self, name: str, unit_id: int, rng: np.random.Generator) -> None:
        super().__init__(name, unit_id, rng)
        self._model = AirCompressorModel(rng)
        self.setpoint_bar = 7.5
        self.remote_enable = True
        self.stopped_remotely = False
        self._load_hours = self.LOAD_HOURS_AT_START

    def _step(self, now: float, dt: float) -> dict[str, SimValue]:
        sample: Sample = self._model.step(now, dt)
        current, power = float(sample["motor_current"]), float(sample["power"])
        running = sample["state"] == "running" and not self.stopped_remotely
        # The model keeps load/unload to itself; a loaded motor runs at a power factor near 0.87,
        # an unloaded one near 0.55, so the served flag follows from current and power.
        apparent = math.sqrt(3) * AirCompressorModel.VOLTAGE * current / 1000.0
        loaded = running and apparent > 0 and power / apparent > 0.7
        if loaded:
            self._load_hours += dt / 3600.0
        if not running:
            current = power = 0.0
        pressure = float(sample["discharge_pressure"])
        return {
            "discharge_pressure": pressure,
            "oil_temp": float(sample["oil_temp"]),
            "motor_current": current,
            "loaded": loaded,
            "alarm_active": bool(sample["alarm_active"]),
            "load_hours": self._load_hours,
            "power": power,
            "vibration_rms": float(sample["vibration_rms"]),
            "pressure_setpoint": self.setpoint_bar,
            "remote_enable": self.remote_enable,
            "running": running,
            "high_oil_temp": float(sample["oil_temp"]) > self.HIGH_OIL_TEMP_C,
            "pressure_high": pressure > self.setpoint_bar + 0.5,
        }

    def write(self, name: str, value: SimValue) -> int | None:
        if name == "pressure_setpoint":
            lo, hi = self.SETPOINT_RANGE_BAR
            if not lo <= float(value) <= hi:
                return int(ExcCodes.ILLEGAL_VALUE)
            self.setpoint_bar = float(value)
        elif name == "running":
            self.stopped_remotely = not bool(value)
        elif name == "remote_enable":
            self.remote_enable = bool(value)
        else:
            return int(ExcCodes.ILLEGAL_ADDRESS)
        self._fresh = False  # the next read shows the write, however soon it comes
        return None


class RegisterBlockDevice(SimulatedDevice):
    """Plain uint16 holding registers ``r00000``... that all change at every step: benchmark load.

    Make one with :func:`register_block`, which gives the class its number of registers.
    """

    kind = "register_block"
    points: ClassVar[tuple[SimPoint, ...]] = ()
    MIN_STEP_S = 1.0
    """New values once a second: encoding 10,000 registers then costs the server little."""

    def __init__(self, name: str, unit_id: int, rng: np.random.Generator) -> None:
        super().__init__(name, unit_id, rng)
        self._tick = 0

    def _step(self, now: float, dt: float) -> dict[str, SimValue]:
        self._tick += 1
        return {point.name: (self._tick + i) % 65536 for i, point in enumerate(self.points)}


def register_block(
    registers: int, unit_id: int = 3, name: str = "register-block"
) -> RegisterBlockDevice:
    """A register block device with ``registers`` holding registers from address 0.

    >>> block = register_block(1000)
    >>> len(block.points), block.points[-1].name, block.config()["unit_id"]
    (1000, 'r00999', 3)
    """
    if not 1 <= registers <= 65536:
        raise ValueError("a register block has 1..65536 registers")
    points = tuple(SimPoint(f"r{i:05d}", "holding", i) for i in range(registers))
    cls = type("RegisterBlock", (RegisterBlockDevice,), {"points": points})
    device: RegisterBlockDevice = cls(name, unit_id, np.random.default_rng(unit_id))
    return device


def default_devices(seed: int = 0) -> list[SimulatedDevice]:
    """The power meter on unit 1 and the compressor on unit 2, reproducible from ``seed``."""
    meter_rng, compressor_rng = np.random.default_rng(seed).spawn(2)
    return [
        PowerMeterDevice("feeder-meter", 1, meter_rng),
        AirCompressorDevice("air-compressor", 2, compressor_rng),
    ]


class _Image:
    """The registers of one device as its clients see them, rebuilt from its values on access."""

    def __init__(self, device: SimulatedDevice) -> None:
        self.device = device
        ends = dict.fromkeys(_TABLES, 0)
        for point in device.points:
            ends[point.table] = max(ends[point.table], point.end)
        # pymodbus needs all four tables, and keeps bit tables in whole 16-bit words
        self.sizes = {
            table: max(16, -(-end // 16) * 16) if table in _BIT_TABLES else max(1, end)
            for table, end in ends.items()
        }
        self._encoded: dict[str, tuple[dict[str, SimValue], list[int]]] = {}
        """The last encoding of each table with the values it came from: a device's values
        change once per step, and encoding thousands of registers again for every request
        would make the simulator, not the client, what a benchmark measures."""

    def sim_device(self, action: SimAction) -> SimDevice:
        def block(table: str) -> list[SimData]:
            if table in _BIT_TABLES:
                # values as a list: pymodbus checks a bit block's count times its values, squared
                return [SimData(0, values=[False] * self.sizes[table], datatype=DataType.BITS)]
            return [SimData(0, count=self.sizes[table], values=0, datatype=DataType.REGISTERS)]

        coils, inputs, holding, input_registers = (block(table) for table in _TABLES)
        return SimDevice(
            self.device.unit_id, simdata=(coils, inputs, holding, input_registers), action=action
        )

    def words(self, table: str, now: float) -> list[int]:
        """The table's content at ``now``: registers, or bits packed as pymodbus keeps them."""
        values = self.device.values(now)
        cached = self._encoded.get(table)
        if cached is not None and cached[0] is values:
            return cached[1]
        words = self._encode(table, values)
        self._encoded[table] = (values, words)
        return words

    def _encode(self, table: str, values: dict[str, SimValue]) -> list[int]:
        dev = self.device
        if table in _BIT_TABLES:
            bits = [False] * self.sizes[table]
            for point in dev.points:
                if point.table == table:
                    bits[point.address] = bool(values[point.name])
            return pack_bits(bits)
        words = [0] * self.sizes[table]
        for point in dev.points:
            if point.table != table:
                continue
            if point.type == "bits":
                mask = 1 << (point.bit or 0)
                on = bool(values[point.name])
                words[point.address] = (words[point.address] & ~mask) | (mask if on else 0)
            else:
                value = values[point.name]
                encoded = encode_point(point, value, dev.word_order, dev.byte_order)
                words[point.address : point.end] = encoded
        return words

    def write(self, table: str, address: int, values: Sequence[int | bool]) -> int | None:
        """Apply a client's write to the device; the exception code when it is refused."""
        span = range(address, address + len(values))
        points = [
            p
            for p in self.device.points
            if p.table == table and p.address < span.stop and p.end > span.start
        ]
        covered = {a for p in points for a in range(p.address, p.end)}
        whole = all(p.address >= span.start and p.end <= span.stop for p in points)
        if not points or not whole or not covered >= set(span):
            return int(ExcCodes.ILLEGAL_ADDRESS)
        if not all(p.writable for p in points):
            return int(ExcCodes.ILLEGAL_ADDRESS)
        for point in points:
            own = values[point.address - address : point.end - address]
            if point.table in _BIT_TABLES:
                value: SimValue = bool(own[0])
            elif point.type == "bits":
                value = bool((int(own[0]) >> (point.bit or 0)) & 1)
            else:
                words = [int(w) for w in own]
                value = decode_point(point, words, self.device.word_order, self.device.byte_order)
            if (code := self.device.write(point.name, value)) is not None:
                return code
        return None


async def _no_answer(*_: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


def _absent_units() -> SimDevice:
    """Unit 0 stands for every unit id not served: answer as a TCP gateway does for them."""
    bits = [SimData(0, values=[False] * 65536, datatype=DataType.BITS)]
    words = [SimData(0, count=65536, values=0, datatype=DataType.REGISTERS)]
    return SimDevice(0, simdata=(bits, list(bits), words, list(words)), action=_no_answer)


class ModbusSimServer:
    """A pymodbus TCP server serving simulated devices; start and stop it on a running loop.

    ``requests`` counts the requests received per (unit id, function code) and ``connections``
    the TCP connections accepted, so tests can see block merging and reconnects from this side.
    """

    def __init__(
        self,
        devices: Sequence[SimulatedDevice] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 5020,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.devices = list(devices) if devices is not None else default_devices()
        self.host, self.port = host, port
        self.requests: Counter[tuple[int, int]] = Counter()
        self.connections = 0
        self._clock = clock
        self._images = {d.unit_id: _Image(d) for d in self.devices}
        self._server: ModbusTcpServer | None = None

    def gateway_config(self, poll_interval_ms: float = 1000) -> dict[str, object]:
        """The gateway's configuration of this server: connection and every device's tags."""
        return {
            "name": "simulated-modbus",
            "host": self.host,
            "port": self.port,
            "devices": [device.config(poll_interval_ms) for device in self.devices],
        }

    def request_count(self, unit_id: int | None = None) -> int:
        return sum(n for (unit, _), n in self.requests.items() if unit_id in (None, unit))

    async def start(self) -> None:
        """Listen; returns once clients can connect. RuntimeError when the port is taken."""
        sim_devices = [
            image.sim_device(partial(self._on_access, image)) for image in self._images.values()
        ]
        if 0 not in self._images:
            sim_devices.append(_absent_units())
        self._server = ModbusTcpServer(
            sim_devices,
            address=(self.host, self.port),
            trace_pdu=self._on_pdu,
            trace_connect=self._on_connect,
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        """Stop listening and close every client connection."""
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def __aenter__(self) -> ModbusSimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _on_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests[(pdu.dev_id, pdu.function_code)] += 1
        return pdu

    def _on_connect(self, connected: bool) -> None:
        if connected:
            self.connections += 1

    async def _on_access(
        self,
        image: _Image,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this on every access, with the table's registers to update in place."""
        table = _TABLE_OF_FUNCTION[function_code]
        if set_values is not None:
            code = image.write(table, address, set_values)
            if code is not None:
                return ExcCodes(code)
        words = image.words(table, self._clock())
        registers[: len(words)] = words
        return None


async def serve(
    host: str = "127.0.0.1",
    port: int = 5020,
    *,
    seed: int = 0,
    stop: asyncio.Event | None = None,
    ready: Callable[[ModbusSimServer], None] | None = None,
    devices: Sequence[SimulatedDevice] | None = None,
) -> None:
    """Serve the default devices (or ``devices``) until ``stop`` is set or the task is cancelled."""
    chosen = list(devices) if devices is not None else default_devices(seed)
    server = ModbusSimServer(chosen, host=host, port=port)
    await server.start()
    try:
        if ready is not None:
            ready(server)
        await (stop or asyncio.Event()).wait()
    finally:
        await server.stop()


class BackgroundServer:
    """A simulator on its own event loop in a thread, for synchronous fixtures and scripts::

    with BackgroundServer(port=5020) as sim:
        config = sim.server.gateway_config(poll_interval_ms=100)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5020,
        *,
        seed: int = 0,
        devices: Sequence[SimulatedDevice] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = ModbusSimServer(
            devices if devices is not None else default_devices(seed),
            host=host,
            port=port,
            clock=clock,
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout_s: float = 10.0) -> ModbusSimServer:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="modbus-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the Modbus simulator did not start")
        if self._error is not None:
            raise RuntimeError(f"the Modbus simulator did not start: {self._error}")
        return self.server

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = self._loop = self._stop = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:  # reported to the starting thread, which raises it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Simulated Modbus TCP power meter and compressor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--poll-interval-ms",
        type=float,
        default=1000,
        help="the poll interval --print-config gives",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the gateway configuration and exit"
    )
    parser.add_argument(
        "--block-registers",
        type=int,
        default=0,
        metavar="N",
        help="also serve unit 3 with N fast-changing holding registers (benchmarks)",
    )
    args = parser.parse_args(argv)
    devices = default_devices(args.seed)
    if args.block_registers:
        devices.append(register_block(args.block_registers))
    if args.print_config:
        server = ModbusSimServer(devices, host=args.host, port=args.port)
        print(json.dumps(server.gateway_config(args.poll_interval_ms), indent=2))
        return

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def announce(server: ModbusSimServer) -> None:
            print(f"modbus simulator listening on {server.host}:{server.port}", flush=True)

        await serve(args.host, args.port, stop=stop, ready=announce, devices=devices)

    asyncio.run(run())


if __name__ == "__main__":
    main()
