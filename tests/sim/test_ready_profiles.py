"""Ready profiles: valid for the device registry, and their maps read the simulated servers.

The OPC UA and Modbus maps are checked against real servers (``SimOpcUaServer``,
``ModbusSimServer``) through the gateway's own sources: every tag of every ready profile must
arrive as a good reading of the profile's data type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from clusterbrain.connectors.gateway.config import FieldDevice, parse_config
from clusterbrain.connectors.gateway.protocols import register_builtin
from clusterbrain.connectors.gateway.runner import HEALTH_TAGS
from clusterbrain.connectors.modbus.client import ModbusSource
from clusterbrain.connectors.opcua.client import OpcUaSource
from clusterbrain.connectors.source import FieldSource, Reading, Sample, as_readings
from clusterbrain.devices.schemas import ProfileIn
from clusterbrain.sim.modbus_server import BackgroundServer, ModbusSimServer, default_devices
from clusterbrain.sim.opcua_server import (
    NAMESPACE_URI,
    SimOpcUaServer,
    SimServerConfig,
    build_address_space_cache,
)
from clusterbrain.sim.profiles import (
    GATEWAY_HEALTH_TAGS,
    PROFILES,
    READY_PROFILES,
    SIM_OPCUA_NAMESPACE,
    ReadyProfile,
)
from clusterbrain.telemetry.store import Quality
from support.services import free_port

FIELD = [ready for ready in READY_PROFILES.values() if ready.protocol != "gateway"]
PYTHON_TYPES = {"float": (float, int), "int": (int,), "bool": (bool,), "string": (str,)}


def test_the_edge_gateway_profile_has_exactly_the_gateway_health_tags() -> None:
    assert GATEWAY_HEALTH_TAGS == HEALTH_TAGS
    gateway = READY_PROFILES["edge_gateway"].profile
    assert tuple(gateway.tag_names) == HEALTH_TAGS
    assert {tag.data_type for tag in gateway.tags} == {"float"}


def test_the_namespace_is_the_simulated_servers() -> None:
    assert SIM_OPCUA_NAMESPACE == NAMESPACE_URI


def test_the_simulators_own_profiles_are_untouched() -> None:
    assert set(PROFILES) == {"injection_moulding", "cnc", "air_compressor", "power_meter"}
    assert not set(PROFILES) & set(READY_PROFILES)


@pytest.mark.parametrize("name", list(READY_PROFILES))
def test_every_ready_profile_is_a_valid_registry_profile(name: str) -> None:
    ready = READY_PROFILES[name]
    document = ProfileIn.model_validate(ready.registry_profile())
    assert [tag.name for tag in document.tags] == ready.profile.tag_names
    assert len(set(ready.profile.tag_names)) == len(ready.profile.tags)
    for tag in ready.profile.tags:
        assert tag.description_en and tag.description_zh, tag.name
        if tag.writable:
            assert tag.data_type == "bool" or None not in (tag.min_value, tag.max_value), tag.name
    for counter in ready.profile.counters:
        assert ready.profile.tag(counter).data_type == "int"


@pytest.mark.parametrize("ready", FIELD, ids=lambda r: r.name)
def test_the_map_covers_every_tag_once_in_profile_order(ready: ReadyProfile) -> None:
    points: Sequence[Any] = ready.opcua if ready.protocol == "opcua" else ready.modbus
    assert [point.tag for point in points] == ready.profile.tag_names


def test_the_ready_machine_profiles_reuse_the_simulators_tags() -> None:
    imm = READY_PROFILES["injection_moulding_euromap77"].profile
    for tag in PROFILES["injection_moulding"].tags:
        assert imm.tag(tag.name) == tag
    for key in ("machine_mode", "cycle_counter", "barrel_zone1_setpoint"):
        assert key in imm.tag_names
    cnc = READY_PROFILES["cnc_umati"].profile
    for key in ("spindle_speed", "feed_override", "program_name", "operation_mode", "part_count"):
        assert key in cnc.tag_names


def test_the_modbus_maps_are_the_simulated_devices_registers() -> None:
    served = {unit["unit_id"]: unit for unit in _units(ModbusSimServer(default_devices()))}
    for name in ("power_meter_modbus", "air_compressor_modbus"):
        ready = READY_PROFILES[name]
        unit = served[ready.unit_id]
        assert ready.modbus_tags() == unit["tags"], name
        assert (ready.word_order, ready.byte_order) == (unit["word_order"], unit["byte_order"])


def _units(server: ModbusSimServer) -> list[dict[str, Any]]:
    units: Any = server.gateway_config()["devices"]
    return list(units)


def test_a_gateway_file_of_every_field_profile_is_valid(tmp_path: Path) -> None:
    register_builtin()
    devices = [ready.gateway_device(f"{ready.device_prefix}-01") for ready in FIELD]
    config = parse_config(_gateway_file(devices), tmp_path / "gateway.yaml")
    assert [d.id for d in config.devices] == ["imm-01", "cnc-01", "meter-01", "compressor-01"]
    with pytest.raises(ValueError, match="gateway's own profile"):
        READY_PROFILES["edge_gateway"].gateway_device("gw-01")


def _gateway_file(devices: Sequence[dict[str, object]]) -> str:
    import yaml

    document = {"gateway": {"id": "gw-test-01"}, "metrics": {"port": 0}, "devices": list(devices)}
    return str(yaml.safe_dump(document, sort_keys=False))


# --- against the simulated servers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def aspace_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("opcua-address-space")
    asyncio.run(build_address_space_cache(directory))
    return directory


async def _read_all(
    source: FieldSource, tags: Sequence[str], timeout: float = 20.0
) -> dict[str, Reading]:
    """Run a source until every tag has arrived; the latest reading of each."""
    latest: dict[str, Reading] = {}

    def emit(batch: Sequence[Reading | Sample]) -> None:
        latest.update({reading.tag: reading for reading in as_readings(batch)})

    stop = asyncio.Event()
    task = asyncio.create_task(source.run(emit, stop))
    deadline = time.monotonic() + timeout
    try:
        while not set(tags) <= set(latest) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    return latest


def _check_readings(ready: ReadyProfile, latest: dict[str, Reading]) -> None:
    assert set(latest) == set(ready.profile.tag_names), ready.name
    for tag in ready.profile.tags:
        reading = latest[tag.name]
        assert reading.quality is Quality.GOOD, (tag.name, reading)
        assert isinstance(reading.value, PYTHON_TYPES[tag.data_type]), (tag.name, reading)
        if tag.data_type != "bool":
            assert not isinstance(reading.value, bool), (tag.name, reading)


def _field_device(ready: ReadyProfile, tmp_path: Path, **where: Any) -> FieldDevice:
    register_builtin()
    entry = ready.gateway_device(f"{ready.device_prefix}-01", interval_ms=100, **where)
    [device] = parse_config(_gateway_file([entry]), tmp_path / "gateway.yaml").devices
    return device


@pytest.mark.parametrize("name", ["injection_moulding_euromap77", "cnc_umati"])
def test_the_opcua_maps_read_every_tag_of_the_simulated_server(
    name: str, aspace_cache: Path, tmp_path: Path
) -> None:
    ready = READY_PROFILES[name]

    async def main() -> dict[str, Reading]:
        config = SimServerConfig(port=free_port(), cache_dir=aspace_cache, update_interval_s=0.2)
        async with SimOpcUaServer(config) as server:
            for point in ready.opcua:
                assert f"{ready.machine}/{point.path}" in server.paths
            device = _field_device(ready, tmp_path, endpoint=server.endpoint)
            return await _read_all(OpcUaSource(device.settings), ready.profile.tag_names)

    _check_readings(ready, asyncio.run(main()))


@pytest.mark.parametrize("name", ["power_meter_modbus", "air_compressor_modbus"])
def test_the_modbus_maps_read_every_tag_of_the_simulated_server(name: str, tmp_path: Path) -> None:
    ready = READY_PROFILES[name]
    with BackgroundServer(port=free_port()) as sim:
        device = _field_device(ready, tmp_path, port=sim.server.port)
        latest = asyncio.run(_read_all(ModbusSource(device.settings), ready.profile.tag_names))
    _check_readings(ready, latest)
