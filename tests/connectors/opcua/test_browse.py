"""Discovery against the simulated server, and the draft it gives used as a node list."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from clusterbrain.connectors.opcua.browse import discover, discover_draft
from clusterbrain.connectors.opcua.client import OpcUaSource
from clusterbrain.connectors.opcua.config import OpcUaConfig
from clusterbrain.connectors.opcua.draft import TAG_PATTERN
from clusterbrain.devices.schemas import ProfileIn
from clusterbrain.sim.opcua_server import SimOpcUaServer, SimServerConfig


def test_discovery_lists_the_simulated_variables(
    sim_config: Callable[..., SimServerConfig],
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(sim_config()) as server:
            variables = await discover(server.endpoint)
            served = set(server.paths)
        by_path = {v.browse_path: v for v in variables}
        assert set(by_path) == served  # every variable, no properties, no standard nodes
        setpoint = by_path["IMM1/InjectionUnit/TemperatureZones/Zone1/SetTemperature"]
        assert setpoint.node_id == "ns=2;s=IMM1.InjectionUnit.TemperatureZones.Zone1.SetTemperature"
        assert (setpoint.data_type, setpoint.writable, setpoint.unit) == ("Double", True, "°C")
        assert (setpoint.min_value, setpoint.max_value) == (0.0, 350.0)
        assert setpoint.description == "Barrel zone 1 set temperature"
        assert isinstance(setpoint.value, float) and 150 < setpoint.value < 300
        actual = by_path["IMM1/InjectionUnit/TemperatureZones/Zone1/ActualTemperature"]
        assert actual.writable is False
        assert by_path["IMM1/Production/GoodParts"].data_type == "UInt32"
        assert by_path["IMM1/MachineStatus/AlarmActive"].data_type == "Boolean"
        assert by_path["CNC1/Spindle/Speed"].unit == "rpm"
        assert by_path["CNC1/Program/ProgramName"].data_type == "String"
        assert by_path["IMM1/InjectionUnit/PressureProfile"].array is True

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_draft_from_discovery_is_a_valid_profile_and_node_list(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(sim_config()) as server:
            report = await discover_draft(server.endpoint, root="IMM1", name="imm_draft")
            config = OpcUaConfig.model_validate(
                {"name": "imm1", "endpoint": server.endpoint, "nodes": report.nodes}
            )
            source, out = OpcUaSource(config), collector()
            async with running(source, out):
                await out.wait_for(lambda c: len(c.readings) == len(config.nodes))
        profile = ProfileIn.model_validate(report.profile)
        names = [tag.name for tag in profile.tags]
        assert len(names) == len(set(names)) == len(report.variables) - 1  # not the array
        assert all(TAG_PATTERN.match(name) for name in names)
        assert "injection_unit_temperature_zones_zone1_set_temperature" in names
        assert all(v.browse_path.startswith("IMM1/") for v in report.variables)
        kinds = {tag.name: tag.data_type for tag in profile.tags}
        assert kinds["production_good_parts"] == "int"
        assert kinds["machine_status_alarm_active"] == "bool"
        assert kinds["machine_status_state"] == "string"
        assert kinds["mould_temperature"] == "float"
        assert len(report.rows) == len(report.variables)
        # Every drafted node reads back as its tag, with the type the profile expects.
        assert {r.tag for r in out.readings} == set(names)
        python_types = {"int": int, "float": float, "bool": bool, "string": str}
        for reading in out.readings:
            assert type(reading.value) is python_types[kinds[reading.tag].value]

    asyncio.run(asyncio.wait_for(scenario(), 60))
