"""OpcUaSource against a real asyncua server playing the simulated machines (in process)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from clusterbrain.connectors.opcua.client import OpcUaSource
from clusterbrain.connectors.opcua.config import OpcUaConfig
from clusterbrain.connectors.opcua.quality import epoch_us
from clusterbrain.connectors.source import WriteRefused
from clusterbrain.sim.opcua_server import SimOpcUaServer, SimServerConfig
from clusterbrain.telemetry.store import Quality

ZONE1 = "IMM1/InjectionUnit/TemperatureZones/Zone1/ActualTemperature"
SETPOINT1 = "IMM1/InjectionUnit/TemperatureZones/Zone1/SetTemperature"
GOOD_PARTS = "IMM1/Production/GoodParts"
PROFILE = "IMM1/InjectionUnit/PressureProfile"
SPINDLE = "CNC1/Spindle/Speed"
STATE = "CNC1/MachineStatus/State"


def _source(server: SimOpcUaServer, nodes: list[dict[str, Any]], **config: Any) -> OpcUaSource:
    for node in nodes:
        node["node_id"] = server.node_id(node.pop("path"))
    settings: dict[str, Any] = {
        "name": "sim",
        "endpoint": server.endpoint,
        "publishing_interval_ms": 100,
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 0.5,
        "nodes": nodes,
    }
    return OpcUaSource(OpcUaConfig.model_validate(settings | config))


def _run(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario, 60))


def test_subscription_delivers_live_values_in_batches(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(sim_config(update_interval_s=0.2)) as server:
            nodes = [
                {"tag": "zone1", "path": ZONE1, "sampling_interval_ms": 100},
                {"tag": "spindle_speed", "path": SPINDLE},
                {"tag": "state", "path": STATE},
                {"tag": "subscriptions", "path": "SimDiagnostics/Subscriptions"},
            ]
            source, out = _source(server, nodes), collector()
            async with running(source, out):
                await out.wait_for(lambda c: len(c.of("zone1")) >= 4)
            first = out.batches[0]
            zone1 = out.of("zone1")
        assert {r.tag for r in first} == {"zone1", "spindle_speed", "state", "subscriptions"}
        assert all(isinstance(r.value, float) and 100 < r.value < 400 for r in zone1)
        assert all(r.quality is Quality.GOOD for r in out.readings)
        assert isinstance(out.of("state")[0].value, str)
        # The sim stamps each step: readings carry its source timestamps, increasing.
        stamps = [r.ts_us for r in zone1]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert out.of("subscriptions")[-1].value == 1
        assert source.counters.reads == len(out.readings)
        assert source.counters.extra["subscriptions"] == 0  # dropped with the session at stop
        assert source.counters.connected is False and source.counters.reconnects == 0

    _run(scenario())


def test_source_timestamps_and_status_codes(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    stamp = datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)

    async def scenario() -> None:
        async with SimOpcUaServer(sim_config()) as server:
            source, out = _source(server, [{"tag": "zone1", "path": ZONE1}]), collector()
            async with running(source, out):
                await out.wait_for(lambda c: len(c.readings) == 1)
                await server.set_value(ZONE1, 201.5, source_time=stamp)
                await out.wait_for(lambda c: c.readings[-1].value == 201.5)
                await server.set_value(ZONE1, 202.5, status="UncertainSensorNotAccurate")
                await out.wait_for(lambda c: c.readings[-1].value == 202.5)
                await server.set_value(ZONE1, None, status="BadSensorFailure")
                await out.wait_for(lambda c: c.readings[-1].quality is Quality.BAD)
        readings = out.readings
        assert readings[1].ts_us == epoch_us(stamp) == 1714550400123456
        assert readings[1].quality is Quality.GOOD
        assert readings[2].quality is Quality.UNCERTAIN
        assert readings[3].value is None

    _run(scenario())


def test_deadband_suppresses_small_changes(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(sim_config()) as server:
            await server.set_value(ZONE1, 200.0)
            nodes = [
                {"tag": "banded", "path": ZONE1, "deadband": 1.0, "sampling_interval_ms": 50},
                {"tag": "every", "path": ZONE1, "sampling_interval_ms": 50},
            ]
            source, out = _source(server, nodes), collector()
            async with running(source, out):
                await out.wait_for(lambda c: len(c.readings) == 2)
                for value in (200.4, 200.8, 202.0, 202.5, 204.0):
                    await server.set_value(ZONE1, value)
                    await out.wait_for(lambda c, v=value: c.of("every")[-1].value == v)
                await asyncio.sleep(0.3)
        assert [r.value for r in out.of("every")] == [200.0, 200.4, 200.8, 202.0, 202.5, 204.0]
        assert [r.value for r in out.of("banded")] == [200.0, 202.0, 204.0]

    _run(scenario())


def test_polling_reads_all_nodes_together_and_sends_changes(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(sim_config()) as server:
            await server.set_value(ZONE1, 200.0)
            nodes = [
                {"tag": "zone1", "path": ZONE1, "deadband": 1.0},
                {"tag": "good_parts", "path": GOOD_PARTS},
                {"tag": "state", "path": STATE},
                {"tag": "profile", "path": PROFILE},
            ]
            source, out = _source(server, nodes, mode="poll"), collector()
            async with running(source, out):
                await out.wait_for(lambda c: len(c.batches) == 1)
                await asyncio.sleep(0.5)  # several polls of unchanged values send nothing
                quiet = len(out.readings)
                await server.set_value(ZONE1, 200.5)  # within the deadband
                await server.set_value(GOOD_PARTS, 1234)
                await out.wait_for(lambda c: c.of("good_parts")[-1].value == 1234)
                await server.set_value(ZONE1, 203.0)
                await out.wait_for(lambda c: c.of("zone1")[-1].value == 203.0)
        assert {r.tag for r in out.batches[0]} == {"zone1", "good_parts", "state"}
        assert quiet == 3
        assert [r.value for r in out.of("zone1")] == [200.0, 203.0]
        assert source.counters.extra["subscriptions"] == 0
        assert source.counters.extra["unsupported_values"] > 0  # the pressure profile array

    _run(scenario())


def test_falls_back_to_polling_when_the_server_refuses_subscriptions(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(sim_config(max_subscriptions=0)) as server:
            source, out = _source(server, [{"tag": "zone1", "path": ZONE1}]), collector()
            async with running(source, out):
                await out.wait_for(lambda c: len(c.readings) == 1)
                await server.set_value(ZONE1, 250.0)
                await out.wait_for(lambda c: c.readings[-1].value == 250.0)
        assert source.counters.extra["poll_fallbacks"] == 1
        assert "BadTooManySubscriptions" in source.counters.last_error

    _run(scenario())


def test_writes_are_checked_converted_and_acknowledged(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(sim_config()) as server:
            nodes = [
                {"tag": "setpoint", "path": SETPOINT1, "writable": True, "min_value": 0},
                {"tag": "setpoint_max", "path": SETPOINT1, "writable": True, "max_value": 350},
                {"tag": "zone1", "path": ZONE1},
                # Writable by our config, read-only on the server.
                {"tag": "good_parts", "path": GOOD_PARTS, "writable": True},
            ]
            source, out = _source(server, nodes), collector()
            with pytest.raises(WriteRefused, match="not connected"):
                await source.write("setpoint", 230)
            async with running(source, out):
                await out.wait_for(lambda c: len(c.readings) == 4)
                await source.write("setpoint", 230)  # an int, written as the node's Double
                await out.wait_for(lambda c: c.of("setpoint")[-1].value == 230.0)
                refusals = {}
                for tag, value in [
                    ("setpoint_max", 400),
                    ("setpoint", -5),
                    ("setpoint", "hot"),
                    ("zone1", 250),
                    ("nope", 1),
                    ("good_parts", 1.5),
                    ("good_parts", 7),
                ]:
                    with pytest.raises(WriteRefused) as refused:
                        await source.write(tag, value)
                    refusals[(tag, value)] = refused.value.reason
                served = server.value(SETPOINT1)
        assert served == 230.0
        assert source.counters.writes == 1 and source.counters.write_errors == 8
        assert "above the maximum 350" in refusals[("setpoint_max", 400)]
        assert "below the minimum 0" in refusals[("setpoint", -5)]
        assert "not a number" in refusals[("setpoint", "hot")]
        assert "not writable" in refusals[("zone1", 250)]
        assert "unknown tag" in refusals[("nope", 1)]
        assert "not a whole number (UInt32)" in refusals[("good_parts", 1.5)]
        assert refusals[("good_parts", 7)] == (
            "good_parts: the server refused the write: BadUserAccessDenied"
        )

    _run(scenario())
