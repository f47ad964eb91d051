"""Edge gateway throughput and memory, against bare protocol loops on the same simulated servers.

    .venv/bin/python bench/gateway.py [--quick] [--rounds N] [--only opcua,modbus,memory] [--port 1883]

Everything is measured in one run (results: a table on stdout, bench/results/gateway-<ts>.json):

opcua    a simulated OPC UA server (its own process) serves ``opcua_nodes`` extra Double
         variables that all change every ``opcua_interval_s``; rounds alternate a bare asyncua
         subscription that only counts its data changes (same subscription and monitored item
         parameters as the gateway) with the gateway itself (``clusterbrain gateway --config``,
         its own process) publishing to the MQTT broker; values/s read (the gateway's
         ``cb_gateway_source_reads_total`` from /metrics) and published (values that reached a
         subscriber on the broker) in a window after a warm-up; medians are compared;
modbus   the same with a simulated Modbus server (its own process) serving a block of
         ``modbus_registers`` plain uint16 holding registers that change at every step; the bare
         loop reads them with pymodbus in 125-register requests, back to back, and counts
         registers; the gateway polls them with ``poll_interval_ms: 1`` (as fast as it can);
memory   the gateway with ``memory_tags`` tags configured (a Modbus block of that many registers
         polled every second, and an OPC UA server with that many variables, one subscription),
         its resident memory (psutil RSS) sampled every 0.5 s.

The uplink goes to the local Mosquitto (127.0.0.1:1883, anonymous, gateway.secret empty). At the
end of each gateway round the gateway is stopped with SIGTERM and what the subscriber received is
compared with what the gateway spooled: nothing may be missing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psutil
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, machine, stop_process, write_results

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TARGETS = {"opcua_ratio": 0.8, "modbus_ratio": 0.8, "memory_rss_mb": 150.0}
GATEWAY_ID = "gw-bench"
MODBUS_UNIT = 3  # the simulator's register block


@dataclass(frozen=True)
class Plan:
    rounds: int = 3  # bare loop and gateway alternate; medians are compared
    warmup_s: float = 4.0
    window_s: float = 15.0
    opcua_nodes: int = 1000
    opcua_interval_s: float = 0.1  # offered: nodes / interval changes a second
    publishing_interval_ms: float = 100.0
    modbus_registers: int = 1000  # 8 requests of 125 registers per poll
    memory_tags: int = 10_000
    memory_s: float = 30.0
    memory_opcua_interval_s: float = 10.0  # 10,000 variables: 1,000 changes a second


QUICK = Plan(rounds=2, warmup_s=3.0, window_s=6.0, memory_s=10.0)
PLAN = Plan()


# --- processes -------------------------------------------------------------------------------------


@contextmanager
def process(args: list[str], ready: str, log: Path, timeout: float = 120.0) -> Iterator[Any]:
    """A child process, once a line containing ``ready`` was printed; SIGTERM at the end."""
    handle = log.open("w")
    child = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=handle, text=True, env=_env()
    )
    assert child.stdout is not None
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        line = child.stdout.readline()
        if not line and child.poll() is not None:
            break
        seen.append(line)
        if ready in line:
            break
    if ready not in "".join(seen):
        child.kill()
        raise SystemExit(f"{' '.join(args[:4])} did not start: {''.join(seen)[-500:]}")
    reader = threading.Thread(target=lambda: [seen.append(x) for x in child.stdout], daemon=True)
    reader.start()
    child.printed, child.reader = seen, reader  # type: ignore[attr-defined]
    try:
        yield child
    finally:
        stop_process(child)
        handle.close()


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    env.pop("CB_GATEWAY_SECRET", None)
    return env


def opcua_server(port: int, nodes: int, interval_s: float, log: Path) -> Any:
    cache = ROOT / "var" / "bench" / "opcua-cache"
    return process(
        [
            PYTHON, "-m", "clusterbrain.sim.opcua_server", "--port", str(port), "--imm", "0",
            "--cnc", "0", "--interval", "0", "--fast", str(nodes),
            "--fast-interval", str(interval_s), "--cache", str(cache),
        ],
        "ready opc.tcp://",
        log,
    )  # fmt: skip


def modbus_server(port: int, registers: int, log: Path) -> Any:
    return process(
        [
            PYTHON, "-m", "clusterbrain.sim.modbus_server", "--port", str(port),
            "--block-registers", str(registers),
        ],
        "listening on",
        log,
    )  # fmt: skip


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


# --- what reaches the broker -----------------------------------------------------------------------


class BrokerCounter:
    """Counts the values the gateway published, per device, as they arrive at the broker."""

    def __init__(self, host: str, port: int) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, int] = {}
        self.payload_bytes = 0
        self.events: list[tuple[float, str, int]] = []
        subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"cb-bench-gw-sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_connect = lambda c, *_: c.subscribe(f"cb/v1/{GATEWAY_ID}/#", qos=1)
        try:
            self._client.connect(host, port)
        except OSError as exc:
            raise SystemExit(f"no MQTT broker at {host}:{port}: {exc}") from exc
        self._client.loop_start()
        if not subscribed.wait(10):
            raise SystemExit("the subscriber could not subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if parts[-1] != "telemetry":
            return
        device = parts[4] if len(parts) == 6 else GATEWAY_ID
        count = sum(len(sample["values"]) for sample in orjson.loads(msg.payload))
        with self.lock:
            self.values[device] = self.values.get(device, 0) + count
            self.payload_bytes += len(msg.payload)
            self.events.append((time.time(), device, count))

    def reset(self) -> None:
        with self.lock:
            self.values.clear()
            self.events.clear()
            self.payload_bytes = 0

    def between(self, device: str, start: float, end: float) -> int:
        with self.lock:
            return sum(n for at, d, n in self.events if d == device and start <= at < end)

    def total(self) -> int:
        with self.lock:
            return sum(self.values.values())

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# --- the gateway -----------------------------------------------------------------------------------


def gateway_file(folder: Path, device: dict[str, Any], host: str, port: int) -> tuple[Path, int]:
    metrics_port = free_port()
    document = {
        "gateway": {"id": GATEWAY_ID, "secret": ""},
        "uplink": {"host": host, "port": port},
        "spool": {"path": str(folder / f"spool-{uuid.uuid4().hex[:6]}"), "max_mb": 256},
        "metrics": {"port": metrics_port},
        "health_interval_s": 5,
        "devices": [device],
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path, metrics_port


def scrape(port: int) -> dict[str, float]:
    """The gateway's counters: reads per device and readings spooled."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cb_gateway_source_reads_total":
                found[f"reads:{sample.labels['device']}"] = sample.value
            elif sample.name == "cb_gateway_readings_total":
                found["readings"] = sample.value
            elif sample.name == "cb_gateway_spool_pending":
                found["spool_pending"] = sample.value
    return found


@contextmanager
def gateway(folder: Path, device: dict[str, Any], host: str, port: int) -> Iterator[Any]:
    config, metrics_port = gateway_file(folder, device, host, port)
    args = [PYTHON, "-m", "clusterbrain.cli", "gateway", "--config", str(config)]
    with process(args, f"gateway {GATEWAY_ID}", folder / "gateway.log") as child:
        child.metrics_port = metrics_port
        wait_until(lambda: _scrape_or_empty(metrics_port).get(f"reads:{device['id']}", 0) > 0, 180)
        yield child


def _scrape_or_empty(port: int) -> dict[str, float]:
    try:
        return scrape(port)
    except OSError:
        return {}


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise SystemExit("timed out waiting for the gateway")
        time.sleep(0.2)


def stop_gateway(child: Any, counter: BrokerCounter) -> dict[str, Any]:
    """SIGTERM, then: did everything the gateway spooled reach the broker?"""
    child.terminate()
    child.wait(60)
    child.reader.join(10)
    printed = "".join(child.printed)
    spooled = left = -1
    for line in printed.splitlines():
        if "stopped;" in line:  # "gateway gw-bench stopped; N readings spooled, M messages left"
            words = line.replace(",", "").split()
            spooled = int(words[words.index("readings") - 1])
            left = int(words[words.index("messages") - 1])
    received_before, deadline = -1, time.time() + 10
    while time.time() < deadline:  # the last QoS 1 messages may still be on their way
        received = counter.total()
        if received in (spooled, received_before):
            break
        received_before = received
        time.sleep(0.5)
    received = counter.total()
    return {
        "spooled": spooled,
        "left_in_spool": left,
        "received": received,
        "bytes_per_value": counter.payload_bytes / max(received, 1),
    }


def gateway_round(
    folder: Path, device: dict[str, Any], host: str, port: int, counter: BrokerCounter
) -> dict[str, Any]:
    counter.reset()
    with gateway(folder, device, host, port) as child:
        proc = psutil.Process(child.pid)
        time.sleep(PLAN.warmup_s)
        before, cpu0, t0 = scrape(child.metrics_port), cpu_seconds(proc), time.time()
        time.sleep(PLAN.window_s)
        after, cpu1, t1 = scrape(child.metrics_port), cpu_seconds(proc), time.time()
        rss_mb = proc.memory_info().rss / 1e6
        key = f"reads:{device['id']}"
        reads = after[key] - before[key]
        # what arrives later than the window by one publish interval is what the window read
        published = counter.between(device["id"], t0 + 0.2, t1 + 0.2)
        delivery = stop_gateway(child, counter)
    seconds = t1 - t0
    return {
        "read_s": reads / seconds,
        "published_s": published / seconds,
        "cpu_us_per_value": (cpu1 - cpu0) * 1e6 / max(reads, 1),
        "cpu_share": (cpu1 - cpu0) / seconds,
        "rss_mb": rss_mb,
        **delivery,
    }


# --- the bare loops --------------------------------------------------------------------------------


async def bare_opcua(endpoint: str, nodes: int) -> dict[str, Any]:
    """A bare asyncua subscription with the gateway's parameters that only counts."""
    from asyncua import Client, ua
    from asyncua.ua.attribute_ids import AttributeIds

    # the same timeouts as the gateway (keepalive_s 10): asyncua's 1 s watchdog gives up on a
    # server that is busy serving notifications
    client = Client(endpoint, timeout=10, watchdog_intervall=10)
    await client.connect()
    count = [0]

    class Handler:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            count[0] += 1

        def status_change_notification(self, status: Any) -> None:
            pass

    try:
        namespace = await client.get_namespace_index("urn:clusterbrain:sim:machines")
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = PLAN.publishing_interval_ms
        params.RequestedMaxKeepAliveCount = 100
        params.RequestedLifetimeCount = 1000
        params.MaxNotificationsPerPublish = 10_000
        params.PublishingEnabled = True
        params.Priority = 0
        subscription = await client.create_subscription(params, Handler())
        requests = []
        for handle, path in enumerate(fast_paths(nodes), start=1):
            parameters = ua.MonitoringParameters()
            parameters.ClientHandle = handle
            parameters.SamplingInterval = PLAN.publishing_interval_ms
            parameters.QueueSize = 1
            parameters.DiscardOldest = True
            request = ua.MonitoredItemCreateRequest()
            node_id = ua.NodeId(ua.String(path.replace("/", ".")), ua.Int16(namespace))
            request.ItemToMonitor = ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value)
            request.MonitoringMode = ua.MonitoringMode.Reporting
            request.RequestedParameters = parameters
            requests.append(request)
        await subscription.create_monitored_items(requests)
        return await _count_window(lambda: count[0])
    finally:
        await client.disconnect()


async def bare_modbus(port: int, registers: int) -> dict[str, Any]:
    """Back-to-back pymodbus reads of the register block, 125 registers each, only counted."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2)
    await client.connect()
    count = [0]
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            for start in range(0, registers, 125):
                answer = await client.read_holding_registers(
                    start, count=min(125, registers - start), device_id=MODBUS_UNIT
                )
                count[0] += len(answer.registers)

    task = asyncio.create_task(loop())
    try:
        return await _count_window(lambda: count[0])
    finally:
        stop.set()
        await task
        client.close()


async def _count_window(count: Callable[[], int]) -> dict[str, Any]:
    me = psutil.Process()
    await asyncio.sleep(PLAN.warmup_s)
    n0, cpu0, t0 = count(), cpu_seconds(me), time.time()
    await asyncio.sleep(PLAN.window_s)
    n1, cpu1, t1 = count(), cpu_seconds(me), time.time()
    seconds = t1 - t0
    return {
        "read_s": (n1 - n0) / seconds,
        "cpu_us_per_value": (cpu1 - cpu0) * 1e6 / max(n1 - n0, 1),
        "cpu_share": (cpu1 - cpu0) / seconds,
    }


def fast_paths(nodes: int) -> list[str]:
    width = max(5, len(str(nodes - 1)))
    return [f"Fast/V{i:0{width}d}" for i in range(nodes)]


# --- phases ----------------------------------------------------------------------------------------


def opcua_device(endpoint: str, nodes: int, interval_ms: float) -> dict[str, Any]:
    return {
        "id": "fast-ua",
        "protocol": "opcua",
        "opcua": {
            "endpoint": endpoint,
            "publishing_interval_ms": interval_ms,
            "request_timeout_s": 30,
            "nodes": [
                {
                    "tag": f"v{i:05d}",
                    "node_id": f"nsu=urn:clusterbrain:sim:machines;s={p.replace('/', '.')}",
                    "sampling_interval_ms": interval_ms,
                }
                for i, p in enumerate(fast_paths(nodes))
            ],
        },
    }


def modbus_device(port: int, registers: int, poll_interval_ms: float) -> dict[str, Any]:
    from clusterbrain.sim.modbus_server import register_block

    block = register_block(registers, unit_id=MODBUS_UNIT)
    return {
        "id": "block-1",
        "protocol": "modbus",
        "modbus": {
            "host": "127.0.0.1",
            "port": port,
            "request_timeout_s": 2.0,
            "devices": [block.config(poll_interval_ms)],
        },
    }


def alternate(
    name: str,
    bare: Callable[[], dict[str, Any]],
    gateway_run: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    rounds = []
    for index in range(PLAN.rounds):
        order = [("bare", bare), ("gateway", gateway_run)]
        if index % 2:
            order.reverse()
        result = {label: run() for label, run in order}
        result["read_ratio"] = result["gateway"]["read_s"] / result["bare"]["read_s"]
        result["published_ratio"] = result["gateway"]["published_s"] / result["bare"]["read_s"]
        print(
            f"  {name} round {index + 1}: bare {result['bare']['read_s']:,.0f}/s, gateway read "
            f"{result['gateway']['read_s']:,.0f}/s published {result['gateway']['published_s']:,.0f}"
            f"/s (ratio {result['published_ratio']:.2f}), received "
            f"{result['gateway']['received']:,} of {result['gateway']['spooled']:,} spooled",
            flush=True,
        )
        rounds.append(result)

    def median(side: str, key: str) -> float:
        return statistics.median(r[side][key] for r in rounds)

    bare_rate = median("bare", "read_s")
    return {
        "rounds": rounds,
        "bare_s": bare_rate,
        "gateway_read_s": median("gateway", "read_s"),
        "gateway_published_s": median("gateway", "published_s"),
        "read_ratio": median("gateway", "read_s") / bare_rate,
        "published_ratio": median("gateway", "published_s") / bare_rate,
        "ratios": [r["published_ratio"] for r in rounds],
        "bare_cpu_us": median("bare", "cpu_us_per_value"),
        "gateway_cpu_us": median("gateway", "cpu_us_per_value"),
        "bare_cpu_share": median("bare", "cpu_share"),
        "gateway_cpu_share": median("gateway", "cpu_share"),
        "missing": sum(max(0, r["gateway"]["spooled"] - r["gateway"]["received"]) for r in rounds),
        "left_in_spool": sum(r["gateway"]["left_in_spool"] for r in rounds),
        "bytes_per_value": median("gateway", "bytes_per_value"),
    }


def run_opcua(folder: Path, host: str, port: int, counter: BrokerCounter) -> dict[str, Any]:
    server_port = free_port()
    with opcua_server(
        server_port, PLAN.opcua_nodes, PLAN.opcua_interval_s, folder / "ua.log"
    ) as srv:
        endpoint = f"opc.tcp://127.0.0.1:{server_port}/clusterbrain/sim"
        server = psutil.Process(srv.pid)
        device = opcua_device(endpoint, PLAN.opcua_nodes, PLAN.publishing_interval_ms)

        def bare() -> dict[str, Any]:
            cpu0 = cpu_seconds(server)
            result = asyncio.run(bare_opcua(endpoint, PLAN.opcua_nodes))
            result["server_cpu_s"] = cpu_seconds(server) - cpu0
            return result

        result = alternate(
            "opcua", bare, lambda: gateway_round(folder, device, host, port, counter)
        )
    result["offered_s"] = PLAN.opcua_nodes / PLAN.opcua_interval_s
    return result


def run_modbus(folder: Path, host: str, port: int, counter: BrokerCounter) -> dict[str, Any]:
    server_port = free_port()
    with modbus_server(server_port, PLAN.modbus_registers, folder / "modbus.log"):
        device = modbus_device(server_port, PLAN.modbus_registers, 1)
        return alternate(
            "modbus",
            lambda: asyncio.run(bare_modbus(server_port, PLAN.modbus_registers)),
            lambda: gateway_round(folder, device, host, port, counter),
        )


def measure_memory(
    folder: Path, device: dict[str, Any], host: str, port: int, counter: BrokerCounter
) -> dict[str, Any]:
    counter.reset()
    samples: list[float] = []
    with gateway(folder, device, host, port) as child:
        proc = psutil.Process(child.pid)
        began = time.time()
        first = scrape(child.metrics_port)
        while time.time() - began < PLAN.memory_s:
            samples.append(proc.memory_info().rss / 1e6)
            time.sleep(0.5)
        last = scrape(child.metrics_port)
        key = f"reads:{device['id']}"
        read_s = (last[key] - first[key]) / (time.time() - began)
        delivery = stop_gateway(child, counter)
    return {
        "tags": PLAN.memory_tags,
        "max_rss_mb": max(samples),
        "first_rss_mb": samples[0],
        "last_rss_mb": samples[-1],
        "read_s": read_s,
        **delivery,
    }


def run_memory(folder: Path, host: str, port: int, counter: BrokerCounter) -> dict[str, Any]:
    tags = PLAN.memory_tags
    out: dict[str, Any] = {}
    modbus_port = free_port()
    with modbus_server(modbus_port, tags, folder / "modbus-memory.log"):
        device = modbus_device(modbus_port, tags, 1000)
        out["modbus"] = measure_memory(folder, device, host, port, counter)
    print(f"  memory, Modbus: {out['modbus']['max_rss_mb']:.0f} MB", flush=True)
    ua_port = free_port()
    interval = PLAN.memory_opcua_interval_s
    with opcua_server(ua_port, tags, interval, folder / "ua-memory.log"):
        endpoint = f"opc.tcp://127.0.0.1:{ua_port}/clusterbrain/sim"
        device = opcua_device(endpoint, tags, 1000)
        out["opcua"] = measure_memory(folder, device, host, port, counter)
    print(f"  memory, OPC UA: {out['opcua']['max_rss_mb']:.0f} MB", flush=True)
    return out


# --- the report ------------------------------------------------------------------------------------


def table_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []

    def row(
        what: str, value: str, target: str = "", ok: bool | None = None, note: str = ""
    ) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        rows.append(
            {"what": what, "value": value, "target": target, "verdict": verdict, "note": note}
        )

    for key, label, loop in (
        ("opcua", "OPC UA", "bare asyncua subscription"),
        ("modbus", "Modbus TCP", "bare pymodbus read loop"),
    ):
        phase = results.get(key)
        if not phase:
            continue
        complete = phase["missing"] == 0 and phase["left_in_spool"] == 0
        offered = f"; offered {phase['offered_s']:,.0f}/s" if "offered_s" in phase else ""
        row(
            f"{label}: {loop}",
            f"{phase['bare_s']:,.0f} values/s",
            note=f"median of {len(phase['rounds'])} rounds{offered}; "
            f"{phase['bare_cpu_us']:.1f} µs CPU per value",
        )
        row(
            f"{label}: gateway, read",
            f"{phase['gateway_read_s']:,.0f} values/s",
            note=f"median; {phase['gateway_cpu_us']:.1f} µs CPU per value in the gateway process "
            f"({phase['gateway_cpu_share'] * 100:.0f} % of a CPU)",
        )
        ratios = ", ".join(f"{r:.2f}" for r in phase["ratios"])
        row(
            f"{label}: gateway, published to the broker",
            f"{phase['gateway_published_s']:,.0f} values/s",
            note=(
                "everything spooled reached the broker"
                if complete
                else f"MISSING {phase['missing']:,} values, {phase['left_in_spool']} msgs in spool"
            )
            + f"; {phase['bytes_per_value']:.1f} payload bytes per value",
        )
        row(
            f"  ratio published / bare ({label})",
            f"{phase['published_ratio']:.2f}",
            f">= {TARGETS[key + '_ratio']}",
            phase["published_ratio"] >= TARGETS[key + "_ratio"] and complete,
            f"per round: {ratios}",
        )
    memory = results.get("memory")
    if memory:
        for key, label in (
            ("modbus", "Modbus block polled 1/s"),
            ("opcua", "OPC UA, one subscription"),
        ):
            m = memory[key]
            row(
                f"gateway RSS, {m['tags']:,} tags ({label})",
                f"{m['max_rss_mb']:.0f} MB",
                f"< {TARGETS['memory_rss_mb']:.0f} MB",
                m["max_rss_mb"] < TARGETS["memory_rss_mb"],
                f"max over {PLAN.memory_s:.0f} s (first {m['first_rss_mb']:.0f} MB); "
                f"{m['read_s']:,.0f} values/s read, {m['received']:,} of {m['spooled']:,} "
                "spooled received",
            )
    return rows


def print_table(results: dict[str, Any], rows: list[dict[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    info = results["machine"]
    table = Table(title=f"Edge gateway ({info['nproc']} CPUs, {info['cpu']})")
    for column in ("what", "value", "target", "verdict", "note"):
        table.add_column(column)
    for r in rows:
        style = {"PASS": "green", "FAIL": "red"}.get(r["verdict"], "")
        verdict = f"[{style}]{r['verdict']}[/]" if style else ""
        table.add_row(r["what"], r["value"], r["target"], verdict, r["note"])
    Console(width=180).print(table)


def markdown(rows: list[dict[str, str]]) -> str:
    lines = ["| What | Value | Target | Verdict | Note |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['what'].strip()} | {r['value']} | {r['target']} | {r['verdict']} | {r['note']} |"
        for r in rows
    ]
    return "\n".join(lines)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    found = {name: version(name) for name in ("asyncua", "pymodbus", "paho-mqtt")}
    with suppress(OSError, subprocess.SubprocessError):
        found["mosquitto"] = subprocess.run(
            ["mosquitto", "-h"], capture_output=True, text=True, timeout=5
        ).stdout.splitlines()[0]
    return found


PHASES = ("opcua", "modbus", "memory")


def main() -> None:
    global PLAN
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 short rounds, 10 s of memory")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--only", default="", help=f"comma-separated phases of {','.join(PHASES)}")
    parser.add_argument(
        "--rounds", type=int, default=0, help="rounds per phase (more when the machine is busy)"
    )
    args = parser.parse_args()
    PLAN = QUICK if args.quick else Plan()
    if args.rounds > 0:
        PLAN = replace(PLAN, rounds=args.rounds)
    wanted = [p for p in args.only.split(",") if p] or list(PHASES)
    began = time.time()
    results: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "plan": asdict(PLAN),
        "quick": args.quick,
        "targets": TARGETS,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(began)),
    }
    counter = BrokerCounter(args.host, args.port)
    phases = {"opcua": run_opcua, "modbus": run_modbus, "memory": run_memory}
    try:
        with tempfile.TemporaryDirectory(prefix="cb-bench-gateway-") as tmp:
            for name in wanted:
                print(f"{name} ...", flush=True)
                results[name] = phases[name](Path(tmp), args.host, args.port, counter)
    finally:
        counter.close()
    results["total_s"] = time.time() - began
    rows = table_rows(results)
    print_table(results, rows)
    results["table"] = rows
    results["markdown"] = markdown(rows)
    path = write_results("gateway", results)
    print(f"total {results['total_s']:.0f} s; results in {path}")


if __name__ == "__main__":
    main()
