"""The factory simulator: simulated machines publishing telemetry over MQTT like real devices.

Each simulated device connects with its own client id and credentials, so the broker's
authentication and ACLs are exercised exactly as in the field. One driver thread steps every
machine model and publishes; paho keeps one network thread per client (reconnects with backoff,
keep-alives), and nothing else starts threads. Injected faults are written to a ground-truth log
(JSON lines) when they begin, which is what detectors are scored against.

Time: samples are ``interval_s`` apart in simulated time and are emitted every
``interval_s / speed`` wall seconds. With ``speed > 1`` the simulated clock runs ahead of the wall
clock; start it in the past (``start_time``) when the receiving side rejects future timestamps.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from clusterbrain.sim.profiles import PROFILES
from clusterbrain.sim.signals import (
    FaultEvent,
    FaultKind,
    MachineModel,
    Sample,
    make_model,
    plan_faults,
)

log = logging.getLogger(__name__)

Protocol = Literal["5", "3.1.1"]
_PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}
FAULT_PLAN_HORIZON_S = 3600.0
"""Faults are planned an hour of simulated time ahead, so a long run needs no upfront plan."""
MAX_LAG_S = 1.0
"""A driver this far behind the wall clock stops trying to catch up, instead of bursting."""


def telemetry_topic(device_id: str) -> str:
    """
    >>> telemetry_topic("im-01")
    'cb/v1/im-01/telemetry'
    """
    return f"cb/v1/{device_id}/telemetry"


def iso_utc(ts: float) -> str:
    """UTC ISO 8601 with microseconds and a Z, as the payload format wants.

    >>> iso_utc(1795574400.123456)
    '2026-11-25T02:40:00.123456Z'
    """
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def device_rng(seed: int, device_id: str) -> np.random.Generator:
    """A device's random stream depends on the seed and its own id only, not on the fleet.

    crc32 rather than hash(): Python salts str hashes per process.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(device_id.encode())]))


def encode_samples(samples: Sequence[dict[str, Any]], batched: bool) -> bytes:
    """The batched form is always a list, even for a last short batch of one sample."""
    return orjson.dumps(list(samples) if batched else samples[0])


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    """A device the simulator plays: its registry id and secret, machine kind and name."""

    device_id: str
    secret: str
    kind: str
    machine_name: str


@dataclass(slots=True)
class SimulatorStats:
    """What the simulator has done; ``messages_published`` counts broker acknowledgements."""

    messages_sent: int = 0
    messages_published: int = 0
    points_published: int = 0
    publish_errors: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    samples_generated: int = 0
    faults_started: int = 0


class BackfillMessage(NamedTuple):
    device_id: str
    topic: str
    payload: bytes
    points: int


class GroundTruthLog:
    """JSON lines, one per fault: which device, machine and tags, from when to when."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, device: SimulatedDevice, event: FaultEvent, tags: Sequence[str]) -> None:
        record = {
            "device_id": device.device_id,
            "machine": device.machine_name,
            "kind": device.kind,
            "fault": str(event.fault),
            "start": iso_utc(event.start),
            "end": iso_utc(event.end),
            "tags": list(tags),
        }
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as out:
                out.write(line)


@dataclass(slots=True)
class _Scheduled:
    event: FaultEvent
    tags: tuple[str, ...]


@dataclass(slots=True)
class _Live:
    """A device while the simulator runs: its model, client, sample buffer and faults."""

    spec: SimulatedDevice
    model: MachineModel
    topic: str
    client: mqtt.Client | None = None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    scheduled: list[_Scheduled] = field(default_factory=list)
    busy_until: float = float("-inf")
    connected: threading.Event = field(default_factory=threading.Event)


class Simulator:
    """Simulated devices publishing to one MQTT broker, each with its own connection."""

    def __init__(
        self,
        devices: Sequence[SimulatedDevice],
        host: str,
        port: int,
        *,
        interval_s: float = 1.0,
        batch: int = 1,
        protocol: Protocol = "5",
        fault_rate_per_hour: float = 0.0,
        ground_truth_path: Path | None = None,
        seed: int = 0,
        speed: float = 1.0,
        start_time: float | None = None,
        qos: int = 1,
        keepalive: int = 60,
        max_queued_messages: int = 1000,
        reconnect_delay: tuple[int, int] = (1, 30),
    ) -> None:
        _check_arguments(devices, interval_s, batch, protocol, speed, qos)
        self.devices = list(devices)
        self._history: dict[str, _Live] = {}
        self.host, self.port = host, port
        self.interval_s, self.batch, self.protocol = interval_s, batch, protocol
        self.fault_rate_per_hour = fault_rate_per_hour
        self.seed, self.speed, self.qos = seed, speed, qos
        self.keepalive, self.max_queued_messages = keepalive, max_queued_messages
        self.reconnect_delay = reconnect_delay
        self.ground_truth = GroundTruthLog(ground_truth_path) if ground_truth_path else None
        self._start_time = start_time
        self._stats = SimulatorStats()
        self._lock = threading.RLock()  # models, buffers, schedules: driver vs inject_fault
        self._stats_lock = threading.Lock()
        self._pending: dict[tuple[str, int], int] = {}
        self._early_acks: dict[tuple[str, int], bool] = {}
        self._stopping = threading.Event()
        self._driver: threading.Thread | None = None
        self._live: dict[str, _Live] = {}
        self._clock = 0.0
        self._planned_until = 0.0
        self._plan_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))

    # --- public API ----------------------------------------------------------------------

    @property
    def stats(self) -> SimulatorStats:
        """A snapshot of the counters."""
        with self._stats_lock:
            return SimulatorStats(**asdict(self._stats))

    @property
    def messages_published(self) -> int:
        return self.stats.messages_published

    @property
    def points_published(self) -> int:
        return self.stats.points_published

    @property
    def publish_errors(self) -> int:
        return self.stats.publish_errors

    @property
    def now(self) -> float:
        """The simulated time of the next sample."""
        return self._clock

    @property
    def running(self) -> bool:
        return self._driver is not None and self._driver.is_alive()

    def start(self, connect_timeout: float = 10.0) -> None:
        """Connect every device, then start the driver; devices that cannot connect yet keep
        retrying in the background and their messages queue (bounded) meanwhile."""
        if self._driver is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        # models that ran through a backfill go on from where it ended (counters, wear, faults)
        self._live = {
            d.device_id: self._history.pop(d.device_id)
            if d.device_id in self._history
            else self._make_live(d)
            for d in self.devices
        }
        for live in self._live.values():
            self._connect(live)
        self._await_connections(connect_timeout)
        # on the wall clock from the first sample on: 200 devices take a while to connect, and a
        # clock read before that stamped every sample as old as the connecting took
        self._clock = self._start_time if self._start_time is not None else time.time()
        self._planned_until = self._clock
        self._driver = threading.Thread(target=self._drive, name="cb-sim-driver", daemon=True)
        self._driver.start()

    def stop(self, drain_timeout: float = 5.0) -> SimulatorStats:
        """Stop sampling, send what is buffered, wait for acknowledgements, disconnect."""
        self._stopping.set()
        if self._driver is not None:
            self._driver.join(drain_timeout + 10.0)
            if self._driver.is_alive():
                log.error("the simulator's driver thread did not stop; abandoning it")
            self._driver = None
        with self._lock:
            for live in self._live.values():
                if live.buffer:
                    self._publish(live)
        self._await_acks(drain_timeout)
        for live in self._live.values():
            self._disconnect(live)
        return self.stats

    def run_for(self, seconds: float) -> SimulatorStats:
        """Run for ``seconds`` of wall-clock time, then stop; returns the final counters."""
        self.start()
        try:
            self._stopping.wait(seconds)
        finally:
            stats = self.stop()
        return stats

    def inject_fault(
        self,
        device_id: str,
        fault: FaultKind,
        duration_s: float,
        *,
        start: float | None = None,
        tag: str | None = None,
    ) -> FaultEvent:
        """Force a fault on a running device from ``start`` (default: the next sample)."""
        with self._lock:
            live = self._live.get(device_id)
            if live is None:
                raise KeyError(f"{device_id} is not running in this simulator")
            begin = self._clock if start is None else start
            event = FaultEvent(device_id, FaultKind(fault), begin, duration_s, tag)
            self._schedule(live, event)
            return event

    def backfill(
        self, start: float, end: float, step_s: float, *, batch: int | None = None
    ) -> Iterator[BackfillMessage]:
        """Messages for ``[start, end)`` from fresh models, oldest first, for filling history
        without a broker; faults follow ``fault_rate_per_hour`` and go to the ground-truth log.
        A later :meth:`start` continues these models, so live data joins the history."""
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        size = batch or self.batch
        lives = [self._make_live(d) for d in self.devices]
        self._history = {live.spec.device_id: live for live in lives}
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xBAC4F111]))
        machines = {live.spec.device_id: live.spec.kind for live in lives}
        by_id = {live.spec.device_id: live for live in lives}
        for event in plan_faults(rng, machines, end - start, self.fault_rate_per_hour, start=start):
            self._schedule(by_id[event.machine_id], event)
        steps = int(np.ceil((end - start) / step_s))
        for i in range(steps):
            now = start + i * step_s
            for live in lives:
                self._begin_due_faults(live, now)
                live.buffer.append(self._sample(live, now, step_s))
                if len(live.buffer) >= size or i == steps - 1:
                    yield self._backfill_message(live, size > 1)

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- models and faults ---------------------------------------------------------------

    def _make_live(self, device: SimulatedDevice) -> _Live:
        model = make_model(device.kind, device_rng(self.seed, device.device_id))
        return _Live(device, model, telemetry_topic(device.device_id))

    def _schedule(self, live: _Live, event: FaultEvent) -> None:
        tags = live.model.inject(event.fault, event.start, event.duration, event.tag)
        live.scheduled.append(_Scheduled(event, tags))
        live.scheduled.sort(key=lambda s: s.event.start)
        live.busy_until = max(live.busy_until, event.end)

    def _plan_ahead(self, now: float) -> None:
        """Plan the next hour of random faults once the clock reaches the planned horizon."""
        if self.fault_rate_per_hour <= 0 or now < self._planned_until:
            return
        machines = {d_id: live.spec.kind for d_id, live in self._live.items()}
        start = self._planned_until
        events = plan_faults(
            self._plan_rng, machines, FAULT_PLAN_HORIZON_S, self.fault_rate_per_hour, start=start
        )
        self._planned_until = start + FAULT_PLAN_HORIZON_S
        for event in events:
            live = self._live[event.machine_id]
            if event.start >= live.busy_until:  # one fault at a time per machine
                self._schedule(live, event)

    def _begin_due_faults(self, live: _Live, now: float) -> None:
        """Log faults whose start the clock has reached: the log holds what really happened."""
        while live.scheduled and live.scheduled[0].event.start <= now:
            due = live.scheduled.pop(0)
            if self.ground_truth is not None:
                self.ground_truth.write(live.spec, due.event, due.tags)
            with self._stats_lock:
                self._stats.faults_started += 1
            log.info("fault %s on %s from %s", due.event.fault, live.spec.device_id, now)

    def _sample(self, live: _Live, now: float, dt: float) -> dict[str, Any]:
        values: Sample = live.model.step(now, dt)
        with self._stats_lock:
            self._stats.samples_generated += 1
        return {"ts": iso_utc(now), "values": values}

    def _backfill_message(self, live: _Live, batched: bool) -> BackfillMessage:
        samples, live.buffer = live.buffer, []
        points = sum(len(s["values"]) for s in samples)
        payload = encode_samples(samples, batched)
        return BackfillMessage(live.spec.device_id, live.topic, payload, points)

    # --- the driver ----------------------------------------------------------------------

    def _drive(self) -> None:
        """One thread steps all machines; it sleeps to the wall-clock pace set by ``speed``."""
        pace = self.interval_s / self.speed
        next_wall = time.monotonic()
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:  # a crashed driver would silently stop the whole factory
                log.exception("simulator tick failed")
            next_wall += pace
            delay = next_wall - time.monotonic()
            if delay > 0:
                self._stopping.wait(delay)
            elif delay < -MAX_LAG_S:
                next_wall = time.monotonic()

    def _tick(self) -> None:
        with self._lock:
            now = self._clock
            self._plan_ahead(now)
            for live in self._live.values():
                self._begin_due_faults(live, now)
                live.buffer.append(self._sample(live, now, self.interval_s))
                if len(live.buffer) >= self.batch:
                    self._publish(live)
            self._clock = now + self.interval_s

    # --- MQTT ----------------------------------------------------------------------------

    def _connect(self, live: _Live) -> None:
        spec = live.spec
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=spec.device_id,
            protocol=_PROTOCOLS[self.protocol],
            userdata=live,
        )
        client.username_pw_set(spec.device_id, spec.secret)
        client.reconnect_delay_set(*self.reconnect_delay)
        client.max_queued_messages_set(self.max_queued_messages)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        live.client = client
        client.connect_async(self.host, self.port, keepalive=self.keepalive)
        client.loop_start()

    def _disconnect(self, live: _Live) -> None:
        if live.client is None:
            return
        live.client.disconnect()
        live.client.loop_stop()
        live.client = None

    def _await_connections(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for live in self._live.values():
            if not live.connected.wait(max(0.0, deadline - time.monotonic())):
                log.warning("%s is not connected yet; it keeps retrying", live.spec.device_id)

    def _publish(self, live: _Live) -> None:
        """Hand the buffered samples to the client; a refusal (queue full) is counted and shed."""
        samples, live.buffer = live.buffer, []
        if live.client is None:
            return
        points = sum(len(s["values"]) for s in samples)
        info = live.client.publish(
            live.topic, encode_samples(samples, self.batch > 1), qos=self.qos
        )
        # MQTT_ERR_NO_CONN: paho keeps the message and sends it after the reconnect.
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            with self._stats_lock:
                self._stats.publish_errors += 1
            return
        key = (live.spec.device_id, info.mid)
        with self._stats_lock:
            self._stats.messages_sent += 1
            if key in self._early_acks:  # the ack overtook publish() on the network thread
                self._count_ack(points, self._early_acks.pop(key))
            else:
                self._pending[key] = points

    def _count_ack(self, points: int, failed: bool) -> None:
        if failed:
            self._stats.publish_errors += 1
        else:
            self._stats.messages_published += 1
            self._stats.points_published += points

    def _await_acks(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._stats_lock:
                if not self._pending:
                    return
            time.sleep(0.01)
        with self._stats_lock:
            missing = len(self._pending)
        log.warning("%d messages were not acknowledged before stopping", missing)

    def _on_connect(
        self, _c: mqtt.Client, live: _Live, _flags: Any, code: ReasonCode, _props: Any
    ) -> None:
        if code.is_failure:
            with self._stats_lock:
                self._stats.connect_failures += 1
            log.warning("%s refused by the broker: %s", live.spec.device_id, code)
            return
        live.connected.set()

    def _on_disconnect(
        self, _c: mqtt.Client, live: _Live, _flags: Any, code: ReasonCode, _props: Any
    ) -> None:
        live.connected.clear()
        if not self._stopping.is_set():
            with self._stats_lock:
                self._stats.disconnects += 1
            log.warning("%s disconnected: %s", live.spec.device_id, code)

    def _on_publish(
        self, _c: mqtt.Client, live: _Live, mid: int, code: ReasonCode, _props: Any
    ) -> None:
        key = (live.spec.device_id, mid)
        failed = code.is_failure
        with self._stats_lock:
            points = self._pending.pop(key, None)
            if points is None:
                self._early_acks[key] = failed
            else:
                self._count_ack(points, failed)


def _check_arguments(
    devices: Sequence[SimulatedDevice],
    interval_s: float,
    batch: int,
    protocol: str,
    speed: float,
    qos: int,
) -> None:
    ids = [d.device_id for d in devices]
    if len(set(ids)) != len(ids):
        raise ValueError("device ids must be unique")
    unknown = sorted({d.kind for d in devices} - set(PROFILES))
    if unknown:
        raise ValueError(f"unknown machine kinds: {', '.join(unknown)}")
    if interval_s <= 0 or speed <= 0:
        raise ValueError("interval_s and speed must be positive")
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(_PROTOCOLS)}")
    if qos not in (0, 1, 2):
        raise ValueError("qos must be 0, 1 or 2")
