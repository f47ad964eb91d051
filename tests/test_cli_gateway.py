"""`clusterbrain gateway` and `clusterbrain simulate --serve` against real servers.

The gateway runs as its own process (``python -m clusterbrain.cli gateway --config ...``) reading
a simulated Modbus server and a simulated OPC UA server, through a real mosquitto; discovery and
the ready profiles run in-process with CliRunner; ``simulate --serve`` runs as a process and is
read by plain asyncua and pymodbus clients and by the gateway's sources built from the
gateway.yaml it prints.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml  # type: ignore[import-untyped]
from asyncua import Client
from paho.mqtt.enums import MQTTProtocolVersion
from pymodbus.client import AsyncModbusTcpClient
from typer.testing import CliRunner

from clusterbrain import cli
from clusterbrain.cli import app
from clusterbrain.connectors.gateway.config import PROTOCOLS, parse_config
from clusterbrain.connectors.gateway.protocols import register_builtin
from clusterbrain.connectors.source import Reading, Sample, as_readings
from clusterbrain.devices.schemas import ProfileIn
from clusterbrain.sim.modbus_server import BackgroundServer
from clusterbrain.sim.opcua_server import (
    NAMESPACE_URI,
    SimOpcUaServer,
    SimServerConfig,
    build_address_space_cache,
)
from clusterbrain.sim.profiles import READY_PROFILES
from clusterbrain.telemetry.store import Quality
from support.cli_console import widen_console
from support.fixtures_mqtt import MqttPeer
from support.mosquitto import MosquittoProcess
from support.services import free_port

DEADLINE_S = 30.0
ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich tables at 80 columns wrap node ids; the tests read them whole."""
    widen_console(monkeypatch)


@pytest.fixture(scope="module")
def aspace_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("opcua-address-space")
    asyncio.run(build_address_space_cache(directory))
    return directory


class OpcUaInThread:
    """A simulated OPC UA server on its own event loop, for commands that run asyncio.run."""

    def __init__(self, config: SimServerConfig) -> None:
        self.server = SimOpcUaServer(config)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with self.server:
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> SimOpcUaServer:
        self._thread.start()
        assert self._ready.wait(DEADLINE_S), "the OPC UA server did not start"
        return self.server

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(DEADLINE_S)


@pytest.fixture
def opcua_server(aspace_cache: Path) -> Iterator[SimOpcUaServer]:
    config = SimServerConfig(port=free_port(), cache_dir=aspace_cache, update_interval_s=0.2)
    with OpcUaInThread(config) as server:
        yield server


# --- ready profiles -------------------------------------------------------------------------------


def test_profiles_lists_the_ready_profiles_and_shows_one_with_its_map() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["gateway", "profiles"])
    assert listed.exit_code == 0, listed.output
    for name in READY_PROFILES:
        assert name in listed.output
    assert "EUROMAP 77" in listed.output and "注塑机" in listed.output
    shown = runner.invoke(app, ["gateway", "profiles", "air_compressor_modbus"])
    assert shown.exit_code == 0, shown.output
    assert "pressure_setpoint" in shown.output and "holding 20" in shown.output
    assert "5..10" in shown.output and "排气压力设定值" in shown.output
    document = runner.invoke(app, ["gateway", "profiles", "cnc_umati", "--yaml"])
    profile = ProfileIn.model_validate(yaml.safe_load(document.stdout))
    assert {t.name for t in profile.tags if t.writable} == {"spindle_override", "feed_override"}
    unknown = runner.invoke(app, ["gateway", "profiles", "lathe"])
    assert unknown.exit_code == 2 and "injection_moulding_euromap77" in unknown.output


def test_example_prints_a_gateway_file_the_gateway_accepts(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "gateway", "example", "--profile", "injection_moulding_euromap77",
            "--profile", "power_meter_modbus", "--profile", "power_meter_modbus",
            "--endpoint", "opc.tcp://10.0.0.7:4840", "--host", "10.0.0.8", "--port", "502",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    register_builtin()
    config = parse_config(result.stdout, tmp_path / "gateway.yaml")
    assert [d.id for d in config.devices] == ["imm-01", "meter-01", "meter-02"]
    assert config.devices[0].settings.endpoint == "opc.tcp://10.0.0.7:4840"
    assert config.devices[1].settings.host == "10.0.0.8"
    assert config.file.gateway.secret_env == "CB_GATEWAY_SECRET"
    refused = CliRunner().invoke(app, ["gateway", "example", "--profile", "edge_gateway"])
    assert refused.exit_code == 2 and "own profile" in refused.output


# --- running the gateway --------------------------------------------------------------------------


def test_a_config_error_prints_every_problem_with_its_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("gateway: {id: gw-01}\nuplink: {port: 0}\nmetrics: {port: 70000}\n")
    result = CliRunner().invoke(app, ["gateway", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{path}:2", f"{path}:3"], lines
    assert "uplink.port" in lines[0] and "metrics.port" in lines[1]
    path.write_text(
        "gateway: {id: gw-01}\n"
        "devices:\n"
        "  - id: meter-01\n"
        "    protocol: modbus\n"
        "    modbus:\n"
        "      host: 127.0.0.1\n"
        "      devices:\n"
        "        - name: meter-01\n"
        "          tags:\n"
        "            - {tag: v, address: 65535, type: float32}\n"
        "  - id: imm-01\n"
        "    protocol: opcua\n"
        "    opcua: {endpoint: opc.tcp://10.0.0.7:4840, nodes: []}\n"
    )
    result = CliRunner().invoke(app, ["gateway", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert "devices[0].modbus" in lines[0] and "65535" in lines[0]
    assert lines[1].startswith(f"{path}:13: devices[1].opcua.nodes"), lines


def test_the_gateway_needs_a_config_and_says_so() -> None:
    result = CliRunner().invoke(app, ["gateway"])
    assert result.exit_code == 2 and "--config" in result.stderr
    missing = CliRunner().invoke(app, ["gateway", "--config", "/nonexistent/gateway.yaml"])
    assert missing.exit_code == 2 and "cannot read the file" in missing.stderr


def _wait_for(what: str, condition: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Inbox:
    """Every message a peer receives, by topic, gathered as they come."""

    def __init__(self, peer: MqttPeer) -> None:
        self.peer = peer
        self.by_topic: dict[str, list[Any]] = {}

    def take(self) -> None:
        while True:
            try:
                message = self.peer.messages.get_nowait()
            except queue.Empty:
                return
            self.by_topic.setdefault(message.topic, []).append(orjson.loads(message.payload))

    def wait(self, what: str, condition: Callable[[dict[str, list[Any]]], bool]) -> None:
        def seen() -> bool:
            self.take()
            return condition(self.by_topic)

        _wait_for(what, seen)


@pytest.mark.mosquitto
def test_the_gateway_command_reads_both_protocols_carries_out_commands_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: MosquittoProcess, opcua_server: SimOpcUaServer
) -> None:
    gateway_id = "gw-test-01"
    with BackgroundServer(port=free_port(), seed=3) as modbus:
        devices = [
            READY_PROFILES["injection_moulding_euromap77"].gateway_device(
                "imm-01", endpoint=opcua_server.endpoint, interval_ms=200
            ),
            READY_PROFILES["air_compressor_modbus"].gateway_device(
                "compressor-01", port=modbus.server.port, interval_ms=200
            ),
        ]
        document = cli.gateway._gateway_document(gateway_id, devices, "127.0.0.1", mosquitto.port)
        document.update(health_interval_s=1, metrics={"port": free_port()})
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
        peer = MqttPeer("127.0.0.1", mosquitto.port, protocol=MQTTProtocolVersion.MQTTv5)
        assert not peer.connect().is_failure
        assert not peer.subscribe(f"cb/v1/{gateway_id}/#").is_failure
        inbox = Inbox(peer)
        process = subprocess.Popen(
            [sys.executable, "-m", "clusterbrain.cli", "gateway", "--config", str(config)],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            telemetry = f"cb/v1/{gateway_id}/gateway/%s/telemetry"
            imm_tags = set(READY_PROFILES["injection_moulding_euromap77"].profile.tag_names)
            inbox.wait(
                "telemetry of both devices and the gateway's health",
                lambda got: (
                    _tags(got, telemetry % "imm-01") >= imm_tags
                    and "discharge_pressure" in _tags(got, telemetry % "compressor-01")
                    and "reads" in _tags(got, f"cb/v1/{gateway_id}/telemetry")
                ),
            )
            commands = [
                ("compressor-01", "c1", "pressure_setpoint", 8.2),
                ("compressor-01", "c2", "pressure_setpoint", 11),
                ("imm-01", "c3", "barrel_zone1_setpoint", 205),
            ]
            for device, command_id, tag, value in commands:
                payload = orjson.dumps({"id": command_id, "tag": tag, "value": value})
                topic = f"cb/v1/{gateway_id}/gateway/{device}/commands"
                assert not peer.publish(topic, payload).is_failure
            acks = {f"cb/v1/{gateway_id}/gateway/{d}/commands/ack" for d, *_ in commands}
            inbox.wait(
                "three acknowledgements", lambda got: sum(len(got.get(t, [])) for t in acks) == 3
            )
            status = {a["id"]: a for t in acks for a in inbox.by_topic[t]}
            assert status["c1"]["status"] == "succeeded", status
            assert status["c2"]["status"] == "failed" and "maximum" in status["c2"]["reason"]
            assert status["c3"]["status"] == "succeeded", status
            assert modbus.server.devices[1].setpoint_bar == pytest.approx(8.2)  # type: ignore[attr-defined]
            path = "IMM1/InjectionUnit/TemperatureZones/Zone1/SetTemperature"
            assert opcua_server.value(path) == pytest.approx(205.0)
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=DEADLINE_S)
            peer.close()
    assert process.returncode == 0, output
    assert f"gateway {gateway_id} stopped" in output
    assert "Publish callback" not in output  # asyncua's INFO chatter stays out without --verbose


def _tags(got: dict[str, list[Any]], topic: str) -> set[str]:
    return {tag for payload in got.get(topic, []) for sample in payload for tag in sample["values"]}


# --- discovery ------------------------------------------------------------------------------------


def test_discover_prints_the_variables_and_writes_a_draft_the_gateway_accepts(
    tmp_path: Path, opcua_server: SimOpcUaServer
) -> None:
    out = tmp_path / "imm.yaml"
    result = CliRunner().invoke(
        app, ["gateway", "discover", opcua_server.endpoint, "--root", "IMM1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "IMM1/Production/GoodParts" in result.output
    assert "(skipped: array)" in result.output  # the pressure profile
    assert "read/write" in result.output
    document = yaml.safe_load(out.read_text())
    profile = ProfileIn.model_validate(document["profile"])
    names = {tag.name for tag in profile.tags}
    assert {"production_good_parts", "machine_status_machine_mode"} <= names
    device = document["device"]
    assert device["id"] == "IMM1" and device["opcua"]["endpoint"] == opcua_server.endpoint
    writable = {n["tag"] for n in device["opcua"]["nodes"] if n.get("writable")}
    assert "injection_unit_temperature_zones_zone1_set_temperature" in writable
    register_builtin()
    gateway_file = yaml.safe_dump({"gateway": {"id": "gw-01"}, "devices": [device]})
    [parsed] = parse_config(gateway_file, tmp_path / "gateway.yaml").devices
    assert len(parsed.settings.nodes) == len(profile.tags)


def test_discover_without_out_prints_the_yaml_and_a_server_not_there_is_an_error() -> None:
    port = free_port()
    result = CliRunner().invoke(
        app, ["gateway", "discover", f"opc.tcp://127.0.0.1:{port}", "--timeout", "2"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and str(port) in result.stderr
    wrong = CliRunner().invoke(app, ["gateway", "discover", "http://example.org"])
    assert wrong.exit_code == 2
    alone = CliRunner().invoke(
        app, ["gateway", "discover", "opc.tcp://127.0.0.1:4840", "--password", "x"]
    )
    assert alone.exit_code == 2 and "--user" in alone.output


def test_discover_prints_the_draft_when_no_file_is_given(opcua_server: SimOpcUaServer) -> None:
    result = CliRunner().invoke(
        app, ["gateway", "discover", opcua_server.endpoint, "--root", "CNC1", "--name", "cnc-07"]
    )
    assert result.exit_code == 0, result.output
    draft = result.stdout[result.stdout.index("# Draft from OPC UA discovery") :]
    document = yaml.safe_load(draft)
    assert document["profile"]["name"] == "cnc-07" and document["device"]["id"] == "cnc-07"
    assert any(t["name"] == "spindle_speed" for t in document["profile"]["tags"])


# --- simulate --serve -----------------------------------------------------------------------------


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _until(lines: queue.Queue[str], marker: str, timeout: float = 60.0) -> str:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} within {timeout} s; got {''.join(seen)[-2000:]}")


async def _read_raw(endpoint: str, modbus_port: int) -> tuple[float, float]:
    """One OPC UA variable with asyncua and one power meter register pair with pymodbus."""
    client = Client(endpoint)
    await client.connect()
    try:
        namespace = await client.get_namespace_index(NAMESPACE_URI)
        node = client.get_node(
            f"ns={namespace};s=IMM1.InjectionUnit.TemperatureZones.Zone1.SetTemperature"
        )
        set_temperature = float(await node.read_value())
    finally:
        await client.disconnect()
    modbus = AsyncModbusTcpClient("127.0.0.1", port=modbus_port)
    await modbus.connect()
    try:
        answer = await modbus.read_input_registers(0, count=2, device_id=1)
        assert not answer.isError()
        low, high = answer.registers  # the meter's float32 are CDAB: low word first
        voltage = struct.unpack(">f", struct.pack(">HH", high, low))[0]
    finally:
        modbus.close()
    return set_temperature, voltage


async def _read_every_tag(config_path: Path) -> dict[str, dict[str, Reading]]:
    """Build each device's source from the printed gateway.yaml and read until all tags came."""
    register_builtin()
    config = parse_config(config_path.read_text(), config_path)
    latest: dict[str, dict[str, Reading]] = {d.id: {} for d in config.devices}
    stop = asyncio.Event()
    tasks = []
    for device in config.devices:
        source = PROTOCOLS[device.protocol].build(device.settings)

        def emit(
            batch: Sequence[Reading | Sample], into: dict[str, Reading] = latest[device.id]
        ) -> None:
            into.update({reading.tag: reading for reading in as_readings(batch)})

        tasks.append(asyncio.create_task(source.run(emit, stop)))
    wanted = {
        "imm-01": "injection_moulding_euromap77",
        "cnc-01": "cnc_umati",
        "meter-01": "power_meter_modbus",
        "compressor-01": "air_compressor_modbus",
    }

    def complete() -> bool:
        return all(
            set(latest[d]) >= set(READY_PROFILES[name].profile.tag_names)
            for d, name in wanted.items()
        )

    deadline = time.monotonic() + DEADLINE_S
    while not complete() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*tasks)
    return latest


def test_simulate_serve_runs_both_servers_and_prints_a_gateway_file_that_reads_them(
    tmp_path: Path, aspace_cache: Path
) -> None:
    opcua_port, modbus_port = free_port(), free_port()
    config_path = tmp_path / "gateway.yaml"
    env = {**ENV, "CLUSTERBRAIN_VAR_DIR": str(tmp_path / "var")}
    (tmp_path / "var").mkdir()
    os.symlink(aspace_cache, tmp_path / "var" / "opcua-cache")  # a cold start takes seconds
    process = subprocess.Popen(
        [
            sys.executable, "-m", "clusterbrain.cli", "simulate", "--serve", "opcua,modbus",
            "--opcua-port", str(opcua_port), "--modbus-port", str(modbus_port),
            "--duration", "120", "--gateway-yaml", str(config_path),
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        printed = _until(_lines(process), "serving for 120 s")
        endpoint = f"opc.tcp://127.0.0.1:{opcua_port}/clusterbrain/sim"
        assert endpoint in printed and f"127.0.0.1:{modbus_port}" in printed
        assert "secret_env: CB_GATEWAY_SECRET" in printed  # the YAML is on stdout too
        set_temperature, voltage = asyncio.run(_read_raw(endpoint, modbus_port))
        assert 150 <= set_temperature <= 320 and 180 <= voltage <= 260
        latest = asyncio.run(_read_every_tag(config_path))
        for device, readings in latest.items():
            bad = [r for r in readings.values() if r.quality is not Quality.GOOD]
            assert readings and not bad, (device, bad)
        assert len(latest["imm-01"]) == len(
            READY_PROFILES["injection_moulding_euromap77"].profile.tags
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(DEADLINE_S)
    assert process.returncode == 0


def test_simulate_serve_refuses_unknown_protocols() -> None:
    result = CliRunner().invoke(app, ["simulate", "--serve", "opcua,bacnet"])
    assert result.exit_code == 2 and "bacnet" in result.output


def test_the_gateway_does_not_load_the_telemetry_stores_libraries() -> None:
    """An edge box has no use for pyarrow and numpy: some 60 MB of resident memory."""
    code = (
        "import sys, clusterbrain.cli, clusterbrain.connectors.gateway.protocols, "
        "clusterbrain.connectors.gateway.runner; "
        "print(sorted(m for m in ('pyarrow', 'numpy', 'duckdb', 'sqlalchemy') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", found.stdout
