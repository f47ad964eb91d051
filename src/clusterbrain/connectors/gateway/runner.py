"""The gateway process: field sources → per-device batches → spool → uplink; commands back.

Readings are gathered per field device for ``publish_interval_s`` and written to the spool as
telemetry messages of the platform's JSON format, on the gateway's topics
(``cb/v1/<gateway>/gateway/<device>/telemetry``). The uplink sends the spool in order. The
gateway's own health (reads, errors, reconnects, spool) goes the same way as its own telemetry
every ``health_interval_s``, and all counters are served at ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from clusterbrain.connectors.gateway.config import PROTOCOLS, GatewayConfig
from clusterbrain.connectors.gateway.payloads import (
    ack_topic,
    command_filter,
    device_of_command_topic,
    encode_ack,
    encode_readings,
    parse_command,
    telemetry_topic,
)
from clusterbrain.connectors.gateway.spool import GatewaySpool, SpoolFull
from clusterbrain.connectors.gateway.uplink import Uplink
from clusterbrain.connectors.source import (
    Emit,
    FieldSource,
    Reading,
    Sample,
    WriteRefused,
    value_count,
)

log = logging.getLogger(__name__)
MAX_BUFFERED_READINGS = 50_000
"""Per device: a source faster than the publish interval flushes early instead of growing."""
COMMAND_TIMEOUT_S = 10.0

HEALTH_TAGS = (
    "reads",
    "errors",
    "reconnects",
    "sources_connected",
    "sources",
    "uplink_connected",
    "uplink_reconnects",
    "spool_bytes",
    "spool_pending",
    "spool_dropped",
    "commands",
    "commands_failed",
)
"""The gateway's own telemetry (its device profile has these tags)."""


def now_us() -> int:
    return time.time_ns() // 1000


class Gateway:
    def __init__(
        self, config: GatewayConfig, sources: Mapping[str, FieldSource] | None = None
    ) -> None:
        self.config = config
        self.gateway_id = config.gateway_id
        spool = config.file.spool
        self.spool = GatewaySpool(config.spool_path(), spool.max_bytes, fsync=spool.fsync)
        self.sources: dict[str, FieldSource] = dict(
            sources
            if sources is not None
            else {d.id: PROTOCOLS[d.protocol].build(d.settings) for d in config.devices}
        )
        identity = config.file.gateway
        self.uplink = Uplink(
            config.file.uplink,
            client_id=f"gateway-{self.gateway_id}",
            username=self.gateway_id,
            password=identity.resolved_secret(),
            spool=self.spool,
            on_command=self._command_arrived,
            command_filter=command_filter(self.gateway_id),
        )
        self._buffers: dict[str, list[Reading | Sample]] = {device: [] for device in self.sources}
        self._buffered: dict[str, int] = dict.fromkeys(self.sources, 0)
        """Values in each buffer (a sample carries many)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.readings = 0
        self._spooled: dict[str, int] = {}
        self.messages = 0
        self.oversized = 0
        self.commands = 0
        self.commands_failed = 0
        self.metrics_port: int | None = None

    # --- running --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._serve_metrics()
        self.uplink.start()
        tasks = [
            asyncio.create_task(source.run(self._emitter(device), stop), name=f"source-{device}")
            for device, source in self.sources.items()
        ]
        tasks.append(asyncio.create_task(self._flush_loop(stop), name="flush"))
        tasks.append(asyncio.create_task(self._health_loop(stop), name="health"))
        try:
            await stop.wait()
        finally:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
            self.flush()
            await asyncio.to_thread(self.uplink.stop)
            self.spool.close()

    def _emitter(self, device: str) -> Emit:
        buffer, buffered = self._buffers[device], self._buffered

        def emit(readings: Sequence[Reading | Sample]) -> None:
            buffer.extend(readings)
            buffered[device] += value_count(readings)
            if buffered[device] >= MAX_BUFFERED_READINGS:
                self._flush_device(device)

        return emit

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        interval = self.config.file.uplink.publish_interval_s
        while not await _stopped(stop, interval):
            self.flush()

    def flush(self) -> None:
        """Write every device's gathered readings to the spool."""
        for device in self._buffers:
            self._flush_device(device)

    def _flush_device(self, device: str) -> None:
        buffer = self._buffers[device]
        if not buffer:
            return
        readings, count = list(buffer), self._buffered[device]
        buffer.clear()
        self._buffered[device] = 0
        if self._spool(telemetry_topic(self.gateway_id, device), readings, count):
            self._spooled[device] = self._spooled.get(device, 0) + count

    def readings_of(self, device: str) -> int:
        """Readings of a field device written to the spool so far."""
        return self._spooled.get(device, 0)

    def _spool(self, topic: str, readings: Sequence[Reading | Sample], count: int) -> bool:
        """Encode and spool; ``count`` is the number of values the readings carry."""
        payloads = encode_readings(readings, self.config.file.uplink.max_samples_per_message)
        try:
            self.spool.append((topic, payload) for payload in payloads)
        except SpoolFull:
            self.oversized += count
            log.error("a message for %s is larger than the spool allows; dropped", topic)
            return False
        self.readings += count
        self.messages += len(payloads)
        self.uplink.wake()
        return True

    # --- health -----------------------------------------------------------------------------------

    def health(self) -> dict[str, float]:
        counters = [source.counters for source in self.sources.values()]
        return {
            "reads": float(sum(c.reads for c in counters)),
            "errors": float(sum(c.errors for c in counters)),
            "reconnects": float(sum(c.reconnects for c in counters)),
            "sources_connected": float(sum(c.connected for c in counters)),
            "sources": float(len(counters)),
            "uplink_connected": float(self.uplink.connected),
            "uplink_reconnects": float(self.uplink.reconnects),
            "spool_bytes": float(self.spool.size_bytes),
            "spool_pending": float(self.spool.pending),
            "spool_dropped": float(self.spool.dropped),
            "commands": float(self.commands),
            "commands_failed": float(self.commands_failed),
        }

    async def _health_loop(self, stop: asyncio.Event) -> None:
        interval = self.config.file.health_interval_s
        while not stop.is_set():
            at = now_us()
            readings = [Reading(tag, at, value) for tag, value in self.health().items()]
            self._spool(telemetry_topic(self.gateway_id, self.gateway_id), readings, len(readings))
            if await _stopped(stop, interval):
                return

    def _serve_metrics(self) -> None:
        metrics = self.config.file.metrics
        if not metrics.port:
            return
        registry = CollectorRegistry()
        registry.register(_GatewayCollector(self))
        server, _thread = start_http_server(metrics.port, metrics.host, registry=registry)
        self.metrics_port = int(server.server_address[1])

    # --- commands ---------------------------------------------------------------------------------

    def _command_arrived(self, topic: str, payload: bytes) -> None:
        """From the uplink's network thread: handle it on the gateway's event loop."""
        loop = self._loop
        if loop is None:
            return

        def start() -> None:
            task = loop.create_task(self._command(topic, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        loop.call_soon_threadsafe(start)

    async def _command(self, topic: str, payload: bytes) -> None:
        self.commands += 1
        device = device_of_command_topic(self.gateway_id, topic) or ""
        command = parse_command(payload)
        if isinstance(command, str):
            self.commands_failed += 1
            log.warning("command on %s refused: %s", topic, command)
            return  # no id to acknowledge; the platform times it out
        ok, reason = await self._carry_out(device, command.tag, command.value, command.expires_ms)
        if not ok:
            self.commands_failed += 1
        ack = encode_ack(command.id, ok, reason, now_us())
        self.spool.append([(ack_topic(topic), ack)])
        self.uplink.wake()

    async def _carry_out(
        self, device: str, tag: str, value: Any, expires_ms: float | None
    ) -> tuple[bool, str]:
        source = self.sources.get(device)
        if source is None:
            return False, f"device {device!r} is not read by gateway {self.gateway_id!r}"
        if expires_ms is not None and now_us() / 1000 > expires_ms:
            return False, "the command expired before it reached the gateway"
        try:
            await asyncio.wait_for(source.write(tag, value), COMMAND_TIMEOUT_S)
        except WriteRefused as exc:
            return False, exc.reason
        except TimeoutError:
            return False, f"the device did not answer within {COMMAND_TIMEOUT_S:.0f} s"
        except Exception as exc:  # a connector's bug must not take the gateway down
            log.exception("write of %s.%s failed", device, tag)
            return False, f"write failed: {exc}"
        return True, ""


async def _stopped(stop: asyncio.Event, wait_s: float) -> bool:
    """Wait up to ``wait_s``; True as soon as ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), wait_s)
    except TimeoutError:
        return False
    return True


class _GatewayCollector(Collector):
    """Reads the counters at scrape time, so nothing is copied on the hot path."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        gateway = self._gateway
        per_source = {
            "reads": ("cb_gateway_source_reads", "Values read from the field device"),
            "errors": ("cb_gateway_source_errors", "Failed or malformed requests"),
            "reconnects": ("cb_gateway_source_reconnects", "Connections re-established"),
        }
        for field, (name, text) in per_source.items():
            family = CounterMetricFamily(name, text, labels=["device"])
            for device, source in gateway.sources.items():
                family.add_metric([device], float(getattr(source.counters, field)))
            yield family
        connected = GaugeMetricFamily(
            "cb_gateway_source_connected", "Field connection up", labels=["device"]
        )
        for device, source in gateway.sources.items():
            connected.add_metric([device], float(source.counters.connected))
        yield connected
        spool = gateway.spool
        yield GaugeMetricFamily(
            "cb_gateway_spool_bytes", "Spool size on disk", value=spool.size_bytes
        )
        yield GaugeMetricFamily(
            "cb_gateway_spool_pending", "Messages not yet acknowledged", value=spool.pending
        )
        yield CounterMetricFamily(
            "cb_gateway_spool_dropped", "Messages dropped because the spool was full",
            value=spool.dropped,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "cb_gateway_uplink_connected", "Uplink to the broker up",
            value=float(gateway.uplink.connected),
        )  # fmt: skip
        yield CounterMetricFamily(
            "cb_gateway_uplink_reconnects", "Uplink reconnections", value=gateway.uplink.reconnects
        )
        yield CounterMetricFamily(
            "cb_gateway_readings", "Readings written to the spool", value=gateway.readings
        )
        yield CounterMetricFamily(
            "cb_gateway_commands", "Commands received", value=gateway.commands
        )
        yield CounterMetricFamily(
            "cb_gateway_commands_failed",
            "Commands refused or failed",
            value=gateway.commands_failed,
        )
