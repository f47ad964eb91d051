"""Draft profiles and node lists from discovered variables (pure)."""

from __future__ import annotations

from clusterbrain.connectors.opcua.config import OpcUaNode
from clusterbrain.connectors.opcua.draft import (
    DISCOVERY_COLUMNS,
    TAG_PATTERN,
    DiscoveredVariable,
    assign_tags,
    discovery_rows,
    draft_nodes,
    draft_profile,
    tag_name,
)
from clusterbrain.devices.schemas import ProfileIn


def _var(path: str, data_type: str = "Double", **extra: object) -> DiscoveredVariable:
    fields: dict[str, object] = {"value": 1.0, "writable": False} | extra
    return DiscoveredVariable(
        node_id=f"ns=2;s={path.replace('/', '.')}",
        browse_path=path,
        data_type=data_type,
        **fields,  # type: ignore[arg-type]
    )


VARIABLES = [
    _var("IMM1/Production/LastCycleTime", unit="s", min_value=0.0, max_value=180.0),
    _var("IMM1/Production/GoodParts", "UInt32", value=12, unit="pcs"),
    _var("IMM1/MachineStatus/AlarmActive", "Boolean", value=False),
    _var("IMM1/MachineStatus/State", "String", value="running", description="Machine state"),
    _var(
        "IMM1/InjectionUnit/TemperatureZones/Zone1/SetTemperature",
        writable=True,
        unit="°C",
        min_value=0.0,
        max_value=350.0,
    ),
    _var("IMM1/InjectionUnit/PressureProfile", array=True, value=None),
    _var("IMM1/MachineInformation/InstallDate", "DateTime", value=None),
    # Two paths that snake case makes equal must still get two tags.
    _var("IMM1/Energy/Power"),
    _var("IMM1/Energy/power"),
]


def test_tags_are_valid_unique_and_relative_to_the_machine() -> None:
    names = assign_tags(VARIABLES)
    assert len(names) == 7  # the array and the date stay out
    assert all(TAG_PATTERN.match(name) for name in names.values())
    assert len(set(names.values())) == len(names)
    assert names["ns=2;s=IMM1.Production.LastCycleTime"] == "production_last_cycle_time"
    assert {names["ns=2;s=IMM1.Energy.Power"], names["ns=2;s=IMM1.Energy.power"]} == {
        "energy_power",
        "energy_power_2",
    }


def test_long_paths_are_cut_to_a_valid_name() -> None:
    name = tag_name("/".join(["VeryLongSegmentName"] * 10))
    assert len(name) <= 64 and TAG_PATTERN.match(name)


def test_draft_profile_is_a_valid_device_profile() -> None:
    profile = draft_profile(VARIABLES, "imm_draft")
    parsed = ProfileIn.model_validate(profile)
    assert parsed.name == "imm_draft" and len(parsed.tags) == 7
    by_name = {tag["name"]: tag for tag in profile["tags"]}
    cycle = by_name["production_last_cycle_time"]
    assert cycle == {
        "name": "production_last_cycle_time",
        "unit": "s",
        "data_type": "float",
        "min_value": 0.0,
        "max_value": 180.0,
        "description_en": "",
        "node_id": "ns=2;s=IMM1.Production.LastCycleTime",
    }
    assert by_name["production_good_parts"]["data_type"] == "int"
    assert by_name["machine_status_alarm_active"]["data_type"] == "bool"
    assert by_name["machine_status_state"]["description_en"] == "Machine state"


def test_draft_nodes_are_valid_gateway_nodes_with_command_ranges() -> None:
    nodes = [OpcUaNode.model_validate(node) for node in draft_nodes(VARIABLES, 500.0)]
    profile_tags = {tag["name"] for tag in draft_profile(VARIABLES, "x")["tags"]}
    assert {node.tag for node in nodes} == profile_tags
    setpoint = next(node for node in nodes if node.writable)
    assert setpoint.tag == "injection_unit_temperature_zones_zone1_set_temperature"
    assert (setpoint.min_value, setpoint.max_value) == (0.0, 350.0)
    assert all(node.sampling_interval_ms == 500.0 for node in nodes)


def test_rows_show_every_variable_and_why_some_are_left_out() -> None:
    rows = discovery_rows(VARIABLES)
    assert len(rows) == len(VARIABLES)
    assert all(len(row) == len(DISCOVERY_COLUMNS) for row in rows)
    by_path = {row[0]: row for row in rows}
    assert by_path["IMM1/InjectionUnit/PressureProfile"][-1] == "(skipped: array)"
    assert by_path["IMM1/MachineInformation/InstallDate"][-1] == "(skipped: type DateTime)"
    assert by_path["IMM1/InjectionUnit/TemperatureZones/Zone1/SetTemperature"][5] == "read/write"
    assert by_path["IMM1/Production/GoodParts"][2:5] == ("UInt32", "12", "pcs")
