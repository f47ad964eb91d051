"""The Modbus TCP source against real servers: the simulator, and a raw TCP server misbehaving."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import struct
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, cast

import pytest

from clusterbrain.connectors.modbus.client import ModbusSource
from clusterbrain.connectors.modbus.registers import connection_from_dict
from clusterbrain.connectors.source import (
    FieldSource,
    Reading,
    Sample,
    WriteRefused,
    as_readings,
)
from clusterbrain.sim.modbus_server import (
    AirCompressorDevice,
    BackgroundServer,
    SimPoint,
    default_devices,
)
from clusterbrain.telemetry.store import Quality
from support.services import free_port

DEADLINE_S = 20.0
"""How long a test waits for something that must happen; a liveness bound, not a speed claim."""
FAST = {"request_timeout_s": 2.0, "retries": 1, "reconnect_initial_s": 0.02, "reconnect_max_s": 0.1}
"""Short backoff; a timeout long enough that a busy shared machine causes no spurious one."""


class Collector:
    """The ``emit`` of a test: keeps every batch."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []

    def __call__(self, batch: Sequence[Reading | Sample]) -> None:
        self.batches.append(as_readings(batch))

    @property
    def readings(self) -> list[Reading]:
        return [reading for batch in self.batches for reading in batch]

    def latest(self) -> dict[str, Reading]:
        return {reading.tag: reading for reading in self.readings}

    def good(self, tag: str) -> list[Reading]:
        return [r for r in self.readings if r.tag == tag and r.quality is Quality.GOOD]

    def bad(self, tag: str) -> list[Reading]:
        return [r for r in self.readings if r.tag == tag and r.quality is Quality.BAD]


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(source: ModbusSource) -> AsyncIterator[Collector]:
    collector = Collector()
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(collector, stop))
    try:
        yield collector
        assert not task.done(), "the source stopped by itself"
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)


def sim_config(sim: BackgroundServer, poll_ms: float = 50, **options: Any) -> dict[str, Any]:
    config = cast(dict[str, Any], sim.server.gateway_config(poll_interval_ms=poll_ms))
    return {**config, **FAST, **options}


def source_of(config: dict[str, Any]) -> ModbusSource:
    return ModbusSource(connection_from_dict(config))


FROZEN_NOW = 1_795_568_400.0  # 2026-11-25 09:00 in Zhongshan: the day shift is on


@pytest.fixture
def sim() -> Iterator[BackgroundServer]:
    with BackgroundServer(port=free_port(), seed=3) as server:
        yield server


@pytest.fixture
def frozen_sim() -> Iterator[BackgroundServer]:
    """A simulator whose clock stands still, so what it serves can be compared exactly."""
    with BackgroundServer(port=free_port(), seed=3, clock=lambda: FROZEN_NOW) as server:
        yield server


def expected_value(point: SimPoint, value: float | bool) -> float | bool:
    """What a value becomes on its way through the point's register type."""
    if point.type in ("bool", "bits"):
        return bool(value)
    if point.type == "float32":
        return cast(float, struct.unpack(">f", struct.pack(">f", value))[0])
    if point.type == "float64":
        return value
    return round(float(value) / point.scale) * point.scale


# --------------------------------------------------------------------------- the simulator


def test_the_source_is_a_field_source(sim: BackgroundServer) -> None:
    source: FieldSource = source_of(sim_config(sim))
    assert source.name == "simulated-modbus"


def test_every_data_type_reads_as_the_simulator_serves_it(frozen_sim: BackgroundServer) -> None:
    source = source_of(sim_config(frozen_sim))
    tags = [tag.name for device in source.connection.devices for tag in device.tags]

    async def scenario() -> Collector:
        async with running(source) as seen:
            await until(lambda: set(seen.latest()) >= set(tags), "a reading of every tag")
        return seen

    before = time.time_ns() // 1000
    seen = asyncio.run(scenario())
    after = time.time_ns() // 1000
    latest = seen.latest()
    types = {point.type for device in frozen_sim.server.devices for point in device.points}
    assert types == {"int16", "uint16", "int32", "uint32", "float32", "float64", "bool", "bits"}
    for device in frozen_sim.server.devices:
        served = device.values(FROZEN_NOW)
        for point in device.points:
            reading = latest[point.name]
            assert reading.quality is Quality.GOOD
            expected = expected_value(point, served[point.name])
            if isinstance(expected, bool):
                assert reading.value is expected, point.name
            else:
                tolerance = 1e-9 + (1e-6 * abs(expected) if point.type == "float32" else 0)
                assert reading.value == pytest.approx(expected, abs=tolerance), point.name
            # the connector stamps the time of the read
            assert before <= reading.ts_us <= after
    assert latest["energy_kwh"].value == pytest.approx(123_456.78, abs=1.0)
    assert isinstance(latest["running"].value, bool) and isinstance(latest["loaded"].value, bool)
    assert source.counters.errors == 0 and source.counters.reconnects == 0


def test_tags_are_read_in_merged_blocks(sim: BackgroundServer) -> None:
    source = source_of(sim_config(sim))
    # 25 tags of two units in 6 reads: meter input 0..19 and 100..103; compressor holding
    # 0..9 and 20..21, its coil and its discrete inputs
    assert [str(b) for b in source.blocks] == [
        "unit 1 input 0..19",
        "unit 1 input 100..103",
        "unit 2 holding 0..9",
        "unit 2 holding 20..21",
        "unit 2 coil 0..0",
        "unit 2 discrete_input 0..1",
    ]

    async def scenario() -> Collector:
        async with running(source) as seen:
            await until(lambda: len(seen.batches) >= 20, "twenty polls")
        return seen

    seen = asyncio.run(scenario())
    polls = Counter(source.device_of(batch[0].tag) for batch in seen.batches)
    requests = sim.server.requests
    assert requests[(1, 4)] == 2 * polls["feeder-meter"]
    assert requests[(2, 3)] == 2 * polls["air-compressor"]
    assert requests[(2, 1)] == requests[(2, 2)] == polls["air-compressor"]
    assert sim.server.request_count() == source.counters.extra["requests"]

    wide = sim_config(sim)
    wide["devices"][1]["max_gap"] = 10  # holding 10..19 is read along: one read for 0..21
    assert [str(b) for b in source_of(wide).blocks][2:4] == [
        "unit 2 holding 0..21",
        "unit 2 coil 0..0",
    ]


def test_units_poll_at_their_own_interval(sim: BackgroundServer) -> None:
    config = sim_config(sim)
    config["devices"][0]["poll_interval_ms"] = 10
    config["devices"][1]["poll_interval_ms"] = 250
    source = source_of(config)

    async def scenario() -> Collector:
        async with running(source) as seen:
            await until(lambda: len(seen.good("discharge_pressure")) >= 3, "three slow polls")
        return seen

    seen = asyncio.run(scenario())
    assert len(seen.good("voltage_l1")) > 3 * len(seen.good("discharge_pressure"))


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            {"name": "absent", "unit_id": 9, "tags": [{"tag": "ghost", "address": 0}]},
            "absent unit 9 holding 0..0: GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
        ),
        (
            {"name": "compressor-io", "unit_id": 2, "tags": [{"tag": "ghost", "address": 500}]},
            "compressor-io unit 2 holding 500..500: ILLEGAL_DATA_ADDRESS",
        ),
    ],
)
def test_a_block_the_device_refuses_is_bad_and_the_others_carry_on(
    sim: BackgroundServer, extra: dict[str, Any], error: str
) -> None:
    config = sim_config(sim)
    config["devices"].append({**extra, "poll_interval_ms": 50})
    source = source_of(config)

    async def scenario() -> Collector:
        async with running(source) as seen:
            await until(lambda: source.counters.errors >= 10, "ten failed polls")
        return seen

    seen = asyncio.run(scenario())
    # reported BAD once, when it went bad, however many polls failed after
    assert [(r.value, r.quality) for r in seen.readings if r.tag == "ghost"] == [
        (None, Quality.BAD)
    ]
    assert seen.good("running") and seen.good("voltage_l1")
    assert source.counters.last_error == error
    # an exception answer is the device speaking: the connection stays
    assert source.counters.reconnects == 0 and sim.server.connections == 1


def test_writes_are_acknowledged_or_refused_with_the_reason(sim: BackgroundServer) -> None:
    config = sim_config(sim)
    compressor = cast(AirCompressorDevice, sim.server.devices[1])

    async def scenario() -> Collector:
        source = source_of(config)
        async with running(source) as seen:
            await until(lambda: bool(seen.good("pressure_setpoint")), "a first poll")
            await source.write("pressure_setpoint", 8.25)
            await source.write("running", False)
            await source.write("remote_enable", False)  # one bit, by mask write
            await until(lambda: seen.latest()["pressure_setpoint"].value == 8.25, "the setpoint")
            await until(lambda: seen.latest()["running"].value is False, "the stop")
            refusals = {
                "discharge_pressure": (7.0, "is not writable"),
                "pressure_setpoint": (11, "above the maximum 10"),
                "running": ("off", "takes true or false"),
                "no_such_tag": (1, "no tag 'no_such_tag'"),
            }
            sent_before = sim.server.request_count(2)
            for tag, (value, reason) in refusals.items():
                with pytest.raises(WriteRefused, match=reason):
                    await source.write(tag, value)
            await asyncio.sleep(0.1)
            assert source.counters.extra["writes_refused"] == 4
            assert sim.server.requests[(2, 6)] == 1  # nothing refused was sent
            assert sim.server.request_count(2) >= sent_before
        assert (source.counters.writes, source.counters.write_errors) == (3, 0)
        return seen

    asyncio.run(scenario())
    assert compressor.setpoint_bar == 8.25 and compressor.stopped_remotely
    assert compressor.remote_enable is False
    assert sim.server.requests[(2, 5)] == 1 and sim.server.requests[(2, 22)] == 1


def test_a_device_exception_refuses_the_write_with_its_name(sim: BackgroundServer) -> None:
    config = sim_config(sim)
    tags = config["devices"][1]["tags"]
    for tag in tags:
        if tag["tag"] == "pressure_setpoint":
            del tag["max_value"]  # the controller's own limit (12 bar) now decides
        if tag["tag"] == "discharge_pressure":
            tag["writable"] = True  # a map that is wrong about the device

    async def scenario() -> ModbusSource:
        source = source_of(config)
        async with running(source) as seen:
            await until(lambda: bool(seen.good("discharge_pressure")), "a first poll")
            with pytest.raises(WriteRefused, match="refused the write: ILLEGAL_DATA_VALUE"):
                await source.write("pressure_setpoint", 12.5)
            with pytest.raises(WriteRefused, match="refused the write: ILLEGAL_DATA_ADDRESS"):
                await source.write("discharge_pressure", 7.0)
            await until(lambda: len(seen.good("discharge_pressure")) >= 3, "polls after")
        return source

    source = asyncio.run(scenario())
    assert source.counters.write_errors == 2 and source.counters.reconnects == 0


def test_a_write_without_a_connection_is_refused() -> None:
    config = {
        "host": "127.0.0.1",
        "port": free_port(),
        **FAST,
        "devices": [{"name": "d", "tags": [{"tag": "sp", "address": 0, "writable": True}]}],
    }
    source = source_of(config)
    with pytest.raises(WriteRefused, match="not connected"):
        asyncio.run(source.write("sp", 1))
    assert source.counters.write_errors == 1


def test_the_source_reconnects_after_a_restart_and_data_continues(sim: BackgroundServer) -> None:
    source = source_of(sim_config(sim))

    async def scenario() -> Collector:
        async with running(source) as seen:
            await until(lambda: len(seen.good("energy_kwh")) >= 3, "readings")
            await asyncio.to_thread(sim.stop)
            await until(lambda: bool(seen.bad("energy_kwh")), "the outage to be reported")
            outage = len(seen.good("voltage_l1"))
            await asyncio.sleep(0.3)  # several failed reconnects
            await asyncio.to_thread(sim.start)
            await until(
                lambda: seen.good("energy_kwh")[-1].ts_us > seen.bad("energy_kwh")[0].ts_us,
                "data again",
            )
            await until(lambda: len(seen.good("voltage_l1")) > outage + 3, "more data")
        return seen

    seen = asyncio.run(scenario())
    tags = [tag.name for device in source.connection.devices for tag in device.tags]
    for tag in tags:
        assert len(seen.bad(tag)) == 1, tag  # once, however long the outage
    energy = [r.value for r in seen.good("energy_kwh")]
    assert energy == sorted(energy)  # the same simulated meter: its counter went on
    assert source.counters.reconnects >= 1 and source.counters.errors >= 2
    assert sim.server.connections >= 2


def test_the_simulator_runs_as_a_subprocess() -> None:
    port = free_port()
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "clusterbrain.sim.modbus_server",
            "--port",
            str(port),
            "--print-config",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    config = json.loads(printed.stdout)
    assert connection_from_dict(config).port == port
    process = subprocess.Popen(
        [sys.executable, "-m", "clusterbrain.sim.modbus_server", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert "listening on" in process.stdout.readline()
        source = source_of({**config, **FAST})

        async def scenario() -> Collector:
            async with running(source) as seen:
                await until(lambda: bool(seen.good("frequency")), "a reading")
            return seen

        frequency = asyncio.run(scenario()).good("frequency")[0].value
        assert 49.0 < cast(float, frequency) < 51.0
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


def test_the_simulated_devices_move_with_time() -> None:
    meter, compressor = default_devices(seed=5)
    start = {d.name: dict(d.values(FROZEN_NOW)) for d in (meter, compressor)}
    later = {d.name: dict(d.values(FROZEN_NOW + 3600)) for d in (meter, compressor)}
    used = cast(float, later["feeder-meter"]["energy_kwh"]) - cast(
        float, start["feeder-meter"]["energy_kwh"]
    )
    assert 5.0 < used < 300.0  # an hour of a workshop feeder, in kWh
    assert later["feeder-meter"]["voltage_l1"] != start["feeder-meter"]["voltage_l1"]
    assert 49.5 < cast(float, later["feeder-meter"]["frequency"]) < 50.5
    hours = cast(float, later["air-compressor"]["load_hours"])
    assert AirCompressorDevice.LOAD_HOURS_AT_START <= hours <= 8765.4 + 1.0
    assert 0.0 <= cast(float, later["air-compressor"]["discharge_pressure"]) <= 16.0


# --------------------------------------------------------------------------- misbehaving servers


GARBAGE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


class FaultyServer:
    """A raw TCP server that answers holding-register reads well, or in one of the bad ways.

    Healthy answers hold ``100 + address`` in every register.
    """

    def __init__(self) -> None:
        self.mode = "healthy"
        self.delay_s = 1.0
        self.connections = 0
        self.requests = 0
        self.port = free_port()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FaultyServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @staticmethod
    def answer(header: bytes, pdu: bytes) -> bytes:
        address, count = struct.unpack(">HH", pdu[1:5])
        data = b"".join(struct.pack(">H", (100 + address + i) & 0xFFFF) for i in range(count))
        body = bytes([header[6], pdu[0], len(data)]) + data
        return header[:4] + struct.pack(">H", len(body)) + body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                header = await reader.readexactly(7)
                pdu = await reader.readexactly(int.from_bytes(header[4:6], "big") - 1)
                self.requests += 1
                answer = self.answer(header, pdu)
                mode = self.mode
                if mode == "garbage":
                    writer.write(GARBAGE)
                elif mode == "wrong_protocol":
                    writer.write(answer[:2] + b"\x12\x34" + answer[4:])
                elif mode == "slow":
                    await asyncio.sleep(self.delay_s)
                    writer.write(answer)
                elif mode == "close_mid_frame":
                    writer.write(answer[:5])
                    await writer.drain()
                    return
                else:
                    writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def faulty_config(port: int, **options: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        **FAST,
        "request_timeout_s": 0.3,
        **options,
        "devices": [
            {
                "name": "plc",
                "unit_id": 1,
                "poll_interval_ms": 10,
                "tags": [
                    {"tag": "a", "address": 0},
                    {"tag": "b", "address": 1, "scale": 0.1},
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "malformed answer: transaction id"),
        ("wrong_protocol", "malformed answer: protocol id 0x1234"),
        ("slow", "no answer within 0.3 s"),
        ("close_mid_frame", "connection closed by the device"),
    ],
)
def test_a_misbehaving_server_is_counted_reset_and_outlived(mode: str, reason: str) -> None:
    async def scenario() -> None:
        async with FaultyServer() as server:
            source = source_of(faulty_config(server.port))
            async with running(source) as seen:
                await until(lambda: len(seen.good("a")) >= 2, "healthy readings")
                server.mode = mode
                await until(lambda: source.counters.errors >= 4, "four failures")
                assert reason in source.counters.last_error
                assert [r.value for r in seen.bad("a")] == [None]
                # each failure reset the connection: retried on a new one, then reconnected
                assert server.connections >= 3 and source.counters.reconnects >= 2
                server.mode = "healthy"
                recovered = len(seen.readings)
                await until(lambda: len(seen.readings) > recovered + 4, "healthy readings again")
            latest = seen.latest()
            assert (latest["a"].value, latest["b"].value) == (100, 10.1)
            assert latest["a"].quality is Quality.GOOD

    asyncio.run(scenario())


def test_memory_and_tasks_stay_flat_across_many_failures() -> None:
    failures = 200

    async def scenario() -> tuple[int, int, int, int]:
        async with FaultyServer() as server:
            config = faulty_config(
                server.port, retries=0, reconnect_initial_s=0.002, reconnect_max_s=0.002
            )
            source = source_of(config)
            server.mode = "garbage"

            async def fail(count: int) -> None:
                target = source.counters.errors + count
                while source.counters.errors < target:
                    # alternate the two failures that are noticed on arrival
                    server.mode = "close_mid_frame" if server.mode == "garbage" else "garbage"
                    await asyncio.sleep(0.005)
                    if time.monotonic() > deadline:
                        raise AssertionError("timed out waiting for failures")

            deadline = time.monotonic() + 3 * DEADLINE_S
            async with running(source):
                await fail(30)  # warm up: pymodbus's frame log and the caches fill
                gc.collect()
                tasks_before = len(asyncio.all_tasks())
                memory_before = tracemalloc.get_traced_memory()[0]
                await fail(failures)
                gc.collect()
                memory_after = tracemalloc.get_traced_memory()[0]
                tasks_after = len(asyncio.all_tasks())
            return memory_before, memory_after, tasks_before, tasks_after

    tracemalloc.start()
    try:
        before, after, tasks_before, tasks_after = asyncio.run(scenario())
    finally:
        tracemalloc.stop()
    assert after - before < 128 * 1024, f"grew by {after - before} bytes over {failures} failures"
    assert tasks_after <= tasks_before + 2


def test_a_server_that_never_listened_is_retried_with_backoff() -> None:
    port = free_port()
    source = source_of(faulty_config(port))

    async def scenario() -> Collector:
        async with running(source) as seen:
            await until(lambda: source.counters.errors >= 3, "three failed connects")
            assert not source.counters.connected
            # a server on that port now: the source gets there by itself
            async with _listening(port) as server:
                await until(lambda: bool(seen.good("a")), "a reading")
                assert server.connections >= 1
        return seen

    seen = asyncio.run(scenario())
    assert next(r.quality for r in seen.readings if r.tag == "a") is Quality.BAD
    assert source.counters.reconnects == 0  # the first connection is no re-connection
    assert not math.isnan(cast(float, seen.good("b")[0].value))


@contextlib.asynccontextmanager
async def _listening(port: int) -> AsyncIterator[FaultyServer]:
    server = FaultyServer()
    server.port = port
    async with server:
        yield server
