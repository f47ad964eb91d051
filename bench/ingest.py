"""End-to-end ingest throughput and overload memory, through the real Mosquitto on 127.0.0.1:1883.

    .venv/bin/python bench/ingest.py [--quick] [--only single,batched_duckdb,...] [--port 1883]

Everything is measured in one run (results: a table on stdout, bench/results/ingest-<ts>.json):

single     rounds that alternate a baseline, a bare paho-mqtt subscriber (MQTT 5, QoS 1,
           Receive Maximum 65535, automatic acks) that only counts single-sample messages, with
           the real platform (Runtime, MqttIngest, IngestPipeline, DuckDB, fresh per round) fed
           the same messages; pipeline rate = messages from the first publish to the moment the
           store holds every point (``points_stored``); the verdict compares the medians;
batched    messages of 50 samples into DuckDB, then PostgreSQL (a fresh database, dropped after);
overload   publishers send as fast as they can (open loop); the bench process's RSS is sampled
           every 0.5 s with the pipeline's counters; what the broker acknowledged but never
           delivered is counted, and a probe checks that ingest still works afterwards.

Publishers are separate processes (one paho client per device, QoS 1) so that they do not take
the measured process's GIL; on a 2-core machine they still take CPU from it, as from the baseline.
In the throughput phases they are flow-controlled end to end: together they keep at most
``flow_*`` messages published but not yet consumed (received by the baseline, stored by the
pipeline). Open loop, Mosquitto's default ``max_queued_messages 1000`` drops what a slower
subscriber has not read yet (its socket backlog counts), so "until every point is stored" would
never come and the baseline would lose messages as well. The closed loop offers each consumer all
it can take, and nothing is lost.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fresh_postgres_database, machine, write_results

TAGS = tuple(f"f{i}" for i in range(10))
DAY_US = 86_400 * 1_000_000
SAMPLE_STEP_US = 100  # samples of one device are 100 µs apart: unique (device, tag, ts) keys
TARGETS = {
    "single_ratio": 0.7,
    "batched_duckdb_points_s": 150_000,
    "batched_postgres_points_s": 100_000,
    "overload_max_rss_mb": 500,
}


@dataclass(frozen=True)
class Plan:
    publishers: int = 2  # processes
    devices_per_publisher: int = 4  # one paho client each
    single_messages: int = 50_000  # per round, for the baseline and for the pipeline alike
    single_rounds: int = 3  # baseline and pipeline alternate; medians are compared
    batched_messages: int = 6_000  # 50 samples each: 3 M points
    samples_per_batch: int = 50
    flow_single: int = 8_000  # closed loop: messages published but not yet consumed, at most
    flow_batched: int = 1_000
    overload_s: float = 30.0
    drain_timeout_s: float = 60.0

    @property
    def devices(self) -> int:
        return self.publishers * self.devices_per_publisher


QUICK = Plan(
    single_messages=16_000,
    single_rounds=2,
    batched_messages=1_600,
    overload_s=8.0,
    drain_timeout_s=30.0,
)


# --- publishers (separate processes) ----------------------------------------------------------


@dataclass(frozen=True)
class PublishJob:
    host: str
    port: int
    devices: tuple[str, ...]
    samples: int  # samples per message
    messages: int  # per device; 0: publish until duration_s has passed
    duration_s: float
    qos: int
    base_us: int  # timestamp of a device's first sample
    window: int = 1_000  # QoS 1: at most this many unacknowledged messages per client
    flow: int = 0  # >0: at most this many messages published but not yet consumed, in total
    index: int = 0  # of this publisher among all


@dataclass
class PublishReport:
    first: float = 0.0  # wall clock of the first publish
    last: float = 0.0  # of the last publish
    acked_at: float = 0.0  # when the broker had acknowledged all (QoS 1)
    sent: int = 0
    acked: int = 0
    payload_bytes: int = 0


def _payload(seq: int, samples: int, base_us: int) -> bytes:
    first = base_us + seq * samples * SAMPLE_STEP_US
    values = {tag: 20.0 + ((seq + i) % 97) * 0.25 for i, tag in enumerate(TAGS)}
    if samples == 1:
        return orjson.dumps({"ts": first / 1000, "values": values})
    return orjson.dumps(
        [{"ts": (first + j * SAMPLE_STEP_US) / 1000, "values": values} for j in range(samples)]
    )


def publisher_main(
    job: PublishJob, ready: Any, go: Any, reports: Any, published: Any, consumed: Any
) -> None:
    """One process: one MQTT 5 client per device, round-robin, each with an ack window.

    With ``job.flow``, the publishers together keep at most that many messages published but
    not yet consumed (``consumed`` is written by the measured process): a closed loop that
    offers the consumer all it can take without overrunning the broker's queues.
    """
    connected = threading.Semaphore(0)
    acked = [0] * len(job.devices)
    clients: list[mqtt.Client] = []
    for index, device in enumerate(job.devices):
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{device}-pub",
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(job.window)
        client.max_queued_messages_set(0)

        def on_connect(*_args: Any) -> None:
            connected.release()

        def on_publish(*_args: Any, k: int = index) -> None:
            acked[k] += 1

        client.on_connect = on_connect
        client.on_publish = on_publish
        client.connect(job.host, job.port, keepalive=60)
        client.loop_start()
        clients.append(client)
    for _ in clients:
        if not connected.acquire(timeout=10):
            raise SystemExit("publisher could not connect")
    topics = [f"cb/v1/{device}/telemetry" for device in job.devices]
    report = PublishReport()
    sent = [0] * len(clients)
    ready.put(os.getpid())
    go.wait()
    report.first = time.time()
    stop_at = report.first + job.duration_s if job.messages == 0 else float("inf")
    active = True
    progress_at = time.time()
    while active:
        active = False
        progressed = False
        for k, client in enumerate(clients):
            if job.messages and sent[k] >= job.messages:
                continue
            active = True
            if job.qos and sent[k] - acked[k] >= job.window:
                continue
            if job.flow and sum(published) - consumed.value >= job.flow:
                break
            payload = _payload(sent[k], job.samples, job.base_us)
            client.publish(topics[k], payload, qos=job.qos)
            sent[k] += 1
            published[job.index] += 1
            report.payload_bytes += len(payload)
            progressed = True
        now = time.time()
        if progressed:
            progress_at = now
        elif active:
            if now - progress_at > 10:  # the consumer stopped taking messages: give up
                break
            time.sleep(0.0002)
        if now >= stop_at:
            break
    report.last = time.time()
    report.sent = sum(sent)
    deadline = time.time() + 30
    while job.qos and sum(acked) < report.sent and time.time() < deadline:
        time.sleep(0.002)
    report.acked_at = time.time()
    report.acked = sum(acked)
    for client in clients:
        client.disconnect()
        client.loop_stop()
    reports.put(asdict(report))


class Publishers:
    """Starts publisher processes, releases them together, gathers their reports."""

    def __init__(self, jobs: list[PublishJob]) -> None:
        ctx = mp.get_context("spawn")
        self._ready = ctx.Queue()
        self._reports = ctx.Queue()
        self._go = ctx.Event()
        self.published = ctx.Array("q", len(jobs), lock=False)
        self.consumed = ctx.Value("q", 0, lock=False)  # messages; written by the consumer side
        self._procs = [
            ctx.Process(
                target=publisher_main,
                args=(job, self._ready, self._go, self._reports, self.published, self.consumed),
            )
            for job in jobs
        ]
        for proc in self._procs:
            proc.start()
        for _ in self._procs:
            self._ready.get(timeout=60)

    def go(self) -> float:
        self._go.set()
        return time.time()

    def done(self) -> bool:
        return not any(proc.is_alive() for proc in self._procs)

    def reports(self, timeout: float = 120.0) -> list[PublishReport]:
        reports = [PublishReport(**self._reports.get(timeout=timeout)) for _ in self._procs]
        for proc in self._procs:
            proc.join(10)
        return reports

    def kill(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def jobs_for(
    plan: Plan,
    host: str,
    port: int,
    devices: list[str],
    *,
    samples: int,
    messages_total: int = 0,
    duration_s: float = 0.0,
    base_us: int,
    qos: int = 1,
    flow: int = 0,
) -> list[PublishJob]:
    per_device = messages_total // len(devices) if messages_total else 0
    return [
        PublishJob(
            host=host,
            port=port,
            devices=tuple(devices[p :: plan.publishers]),
            samples=samples,
            messages=per_device,
            duration_s=duration_s,
            qos=qos,
            base_us=base_us,
            flow=flow,
            index=p,
        )
        for p in range(plan.publishers)
    ]


def summarize(reports: list[PublishReport]) -> dict[str, Any]:
    first = min(r.first for r in reports)
    last = max(r.last for r in reports)
    sent = sum(r.sent for r in reports)
    return {
        "sent": sent,
        "acked_by_broker": sum(r.acked for r in reports),
        "first_publish": first,
        "publish_s": last - first,
        "publish_rate": sent / max(last - first, 1e-9),
        "broker_ack_s": max(r.acked_at for r in reports) - first,
        "payload_mb": sum(r.payload_bytes for r in reports) / 1e6,
    }


# --- the broker's own counters -------------------------------------------------------------------


class BrokerSys:
    """Follows ``$SYS/broker/publish/messages/dropped`` for the whole run.

    Mosquitto refreshes it every ``sys_interval`` (10 s by default) and only when it changed; the
    retained copy a new subscriber should get first is not always there (2.0.11 here), so a
    delta needs a value seen before the phase and one published after it. Best effort: the
    exact figure for our subscription is "acknowledged by the broker − received by ingest".
    """

    TOPIC = "$SYS/broker/publish/messages/dropped"
    INTERVAL_S = 10.0

    def __init__(self, host: str, port: int) -> None:
        self.samples: list[tuple[float, int]] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"cb-bench-sys-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_connect = lambda c, *_: c.subscribe(self.TOPIC)
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with suppress(ValueError):
            self.samples.append((time.time(), int(msg.payload)))

    def before(self, moment: float) -> int | None:
        seen = [value for at, value in self.samples if at <= moment]
        return seen[-1] if seen else None

    def after(self, moment: float) -> int | None:
        """The value published at least one interval after ``moment`` (waits for it)."""
        deadline = moment + 2 * self.INTERVAL_S + 1
        while time.time() < deadline:
            later = [value for at, value in self.samples if at > moment + self.INTERVAL_S]
            if later:
                return later[0]
            time.sleep(0.1)
        return self.samples[-1][1] if self.samples and self.samples[-1][0] > moment else None

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def sys_delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before


# --- the platform under test ----------------------------------------------------------------------


def connect_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.ReceiveMaximum = 65_535
    return properties


def clear_session(host: str, port: int, client_id: str) -> None:
    """Drop the persistent session a run left on the broker (clean start, expiry 0)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    with suppress(OSError):
        client.connect(host, port, clean_start=True)
        client.loop_start()
        time.sleep(0.3)
        client.disconnect()
        client.loop_stop()


@contextmanager
def platform(
    folder: Path, host: str, port: int, backend: str, postgres_url: str = ""
) -> Iterator[tuple[Any, list[str]]]:
    """A Runtime with one enterprise, a 10-float-tag profile and ``DEVICES`` devices, ingesting."""
    from clusterbrain.api.runtime import Runtime
    from clusterbrain.platform.settings import Settings

    run = uuid.uuid4().hex[:8]
    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        var_dir=folder,
        database_url=f"sqlite:///{(folder / 'meta.db').as_posix()}",
        telemetry_backend=backend,  # type: ignore[arg-type]
        telemetry_postgres_url=postgres_url,
        mqtt_host=host,
        mqtt_port=port,
        mqtt_client_id=f"cb-bench-ingest-{run}",
        mqtt_shared_group=f"bench{run}",
    )
    runtime = Runtime(settings)
    devices = register_devices(runtime, run, PLAN.devices)
    runtime.start_ingest(mqtt=True)
    if runtime.mqtt is None or not runtime.mqtt.connected:
        raise SystemExit(f"ingest could not connect to MQTT {host}:{port}")
    time.sleep(0.3)  # the SUBSCRIBE is sent from on_connect
    warm_up(runtime, devices, host, port)
    try:
        yield runtime, devices
    finally:
        runtime.close()
        clear_session(host, port, settings.mqtt_client_id)


def warm_up(runtime: Any, devices: list[str], host: str, port: int) -> None:
    """A few messages per device through the whole path before anything is timed: the first
    ones pay for lazy imports, the series rows and the device directory's cache."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"cb-bench-warm-{uuid.uuid4().hex[:8]}"
    )
    client.connect(host, port)
    client.loop_start()
    base_us = int(time.time() * 1_000_000) - 3 * DAY_US
    infos = [
        client.publish(f"cb/v1/{device}/telemetry", _payload(seq, samples, base_us), qos=1)
        for seq, samples in ((0, 1), (1, PLAN.samples_per_batch))
        for device in devices
    ]
    for info in infos:
        info.wait_for_publish(10)
    expected = len(devices) * (1 + PLAN.samples_per_batch) * len(TAGS)
    deadline = time.time() + 30
    while counter(runtime.metrics.points_stored) < expected and time.time() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def probe(runtime: Any, devices: list[str], host: str, port: int, base_us: int) -> float | None:
    """Seconds until one fresh message per device is stored (None: not within 20 s)."""
    stored_before = counter(runtime.metrics.points_stored)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"cb-bench-probe-{uuid.uuid4().hex[:8]}"
    )
    client.connect(host, port)
    client.loop_start()
    began = time.time()
    for device in devices:
        client.publish(f"cb/v1/{device}/telemetry", _payload(0, 1, base_us), qos=1)
    expected = stored_before + len(devices) * len(TAGS)
    took: float | None = None
    while time.time() - began < 20:
        if counter(runtime.metrics.points_stored) >= expected:
            took = time.time() - began
            break
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    return took


def register_devices(runtime: Any, run: str, count: int) -> list[str]:
    from clusterbrain.devices import schemas as device_schemas
    from clusterbrain.devices import service as devices
    from clusterbrain.platform import schemas, service
    from clusterbrain.platform.db import session_scope
    from clusterbrain.platform.service import principal_of

    with session_scope(runtime.sessions) as session:
        admin, _ = service.bootstrap_admin(session, "bench")
        root = principal_of(admin)
        cluster = service.create_cluster(session, root, schemas.ClusterIn(name=f"bench-{run}"))
        enterprise = service.create_enterprise(
            session, root, schemas.EnterpriseIn(cluster_id=cluster.id, name=f"bench-{run}")
        )
        profile = devices.create_profile(
            session,
            root,
            device_schemas.ProfileIn(
                name="bench-10f",
                enterprise_id=enterprise.id,
                tags=[device_schemas.TagIn(name=tag, min_value=0, max_value=1000) for tag in TAGS],
            ),
        )
        ids = [f"b{run}-{i:03d}" for i in range(count)]
        for device_id in ids:
            devices.register_device(
                session,
                root,
                device_schemas.DeviceIn(profile_id=profile.id, device_id=device_id),
                runtime.broker_auth,
            )
    runtime.directory.invalidate()
    return ids


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process's threads, by thread name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    cpu: dict[str, float] = {}
    for thread in psutil.Process().threads():
        name = names.get(thread.id, "other")
        if name.startswith("paho-mqtt-client-"):
            name = "paho network thread"
        cpu[name] = cpu.get(name, 0.0) + thread.user_time + thread.system_time
    return cpu


def cpu_per_message(before: dict[str, float], messages: int) -> dict[str, float]:
    """µs of CPU per message, per thread (main thread left out: it only polls) and in total."""
    after = thread_cpu()
    used = {
        name: (seconds - before.get(name, 0.0)) * 1e6 / max(messages, 1)
        for name, seconds in after.items()
        if name != "MainThread"
    }
    used = {name: round(us, 1) for name, us in used.items() if us >= 0.05}
    used["total"] = round(sum(used.values()), 1)
    return used


def counter(metric: Any) -> float:
    return float(metric._value.get())


def labelled_total(metric: Any) -> float:
    return float(
        sum(
            sample.value for sample in metric.collect()[0].samples if sample.name.endswith("_total")
        )
    )


# --- phases --------------------------------------------------------------------------------------


def run_baseline(host: str, port: int, base_us: int) -> dict[str, Any]:
    """A bare paho subscriber that only counts, on the same topics, fed by the same publishers."""
    run = uuid.uuid4().hex[:8]
    devices = [f"b{run}-{i:03d}" for i in range(PLAN.devices)]
    got = {"n": 0, "first": 0.0, "last": 0.0}  # written by paho's network thread only
    publishers = Publishers(
        jobs_for(
            PLAN,
            host,
            port,
            devices,
            samples=1,
            messages_total=PLAN.single_messages,
            base_us=base_us,
            flow=PLAN.flow_single,
        )
    )
    consumed = publishers.consumed

    def on_message(_c: Any, _u: Any, _msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        if got["n"] == 0:
            got["first"] = now
        got["n"] += 1
        got["last"] = now
        consumed.value += 1

    subscribed = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"cb-bench-bare-{run}", protocol=mqtt.MQTTv5
    )
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe("cb/v1/+/telemetry", qos=1)
    client.connect(host, port, clean_start=True, properties=connect_properties())
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit("baseline subscriber could not subscribe")
    cpu_before = thread_cpu()
    publishers.go()
    pub = summarize(publishers.reports())
    expected = pub["sent"]
    deadline = time.time() + 15
    idle_since = time.time()
    seen = -1
    while got["n"] < expected and time.time() < deadline:
        if got["n"] != seen:
            seen, idle_since = got["n"], time.time()
        elif time.time() - idle_since > 3:
            break
        time.sleep(0.01)
    cpu_us = cpu_per_message(cpu_before, int(got["n"]))
    client.disconnect()
    client.loop_stop()
    received = int(got["n"])
    span = got["last"] - got["first"]
    return {
        "publishers": pub,
        "cpu_us_per_msg": cpu_us,
        "received": received,
        "lost": expected - received,
        "rate_msgs": received / span if span > 0 else 0.0,
        "rate_msgs_from_first_publish": received / (got["last"] - pub["first_publish"]),
    }


def run_single_rounds(
    folder: Path, host: str, port: int, base_us: int, phase_us: int
) -> dict[str, Any]:
    """Baseline and pipeline (each on a fresh platform) alternate, so that both see the same
    background load; the verdict compares their medians."""
    rounds = []
    for index in range(PLAN.single_rounds):
        baseline = run_baseline(host, port, base_us)
        with platform(folder / f"single-{index}", host, port, "duckdb") as (runtime, devices):
            pipeline = run_pipeline(
                runtime,
                devices,
                host,
                port,
                samples=1,
                messages=PLAN.single_messages,
                base_us=base_us + phase_us,
                flow=PLAN.flow_single,
            )
        ratio = pipeline["msgs_s"] / baseline["rate_msgs"] if baseline["rate_msgs"] else 0.0
        print(
            f"         round {index + 1}: baseline {baseline['rate_msgs']:,.0f} msg/s, "
            f"pipeline {pipeline['msgs_s']:,.0f} msg/s, ratio {ratio:.2f}",
            flush=True,
        )
        rounds.append({"baseline": baseline, "pipeline": pipeline, "ratio": ratio})
    baseline_rate = statistics.median(r["baseline"]["rate_msgs"] for r in rounds)
    pipeline_rate = statistics.median(r["pipeline"]["msgs_s"] for r in rounds)
    return {
        "rounds": rounds,
        "baseline_msgs_s": baseline_rate,
        "pipeline_msgs_s": pipeline_rate,
        "pipeline_points_s": pipeline_rate * len(TAGS),
        "ratio": pipeline_rate / baseline_rate if baseline_rate else 0.0,
        "ratios": [r["ratio"] for r in rounds],
        "baseline_cpu_us_per_msg": statistics.median(
            r["baseline"]["cpu_us_per_msg"]["total"] for r in rounds
        ),
        "pipeline_cpu_us_per_msg": statistics.median(
            r["pipeline"]["cpu_us_per_msg"]["total"] for r in rounds
        ),
        "baseline_lost": sum(r["baseline"]["lost"] for r in rounds),
        "complete": all(r["pipeline"]["complete"] for r in rounds),
        "points_stored": sum(r["pipeline"]["points_stored"] for r in rounds),
        "expected_points": sum(r["pipeline"]["expected_points"] for r in rounds),
    }


def wait_stored(
    runtime: Any,
    target: float,
    publishers: Publishers,
    start: float,
    timeout: float,
    per_message: int = 0,
) -> tuple[float, float]:
    """Poll ``points_stored`` until it reaches ``target``; stop early when it stops moving.

    With ``per_message``, tell the publishers how many messages are stored (their flow control).
    """
    metrics = runtime.metrics
    first_value = counter(metrics.points_stored)
    last_value, last_change = first_value, time.time()
    deadline = start + timeout
    while time.time() < deadline:
        value = counter(metrics.points_stored)
        if per_message:
            publishers.consumed.value = int((value - first_value) // per_message)
        now = time.time()
        if value != last_value:
            last_value, last_change = value, now
        if value >= target:
            return value, now
        if publishers.done() and now - last_change > 8:
            break
        time.sleep(0.005)
    return last_value, last_change


def run_pipeline(
    runtime: Any,
    devices: list[str],
    host: str,
    port: int,
    *,
    samples: int,
    messages: int,
    base_us: int,
    flow: int,
) -> dict[str, Any]:
    metrics = runtime.metrics
    stored_before = counter(metrics.points_stored)
    dup_before = counter(metrics.points_duplicate)
    dead_before = labelled_total(metrics.dead_letters)
    dropped_before = labelled_total(metrics.dropped)
    publishers = Publishers(
        jobs_for(
            PLAN,
            host,
            port,
            devices,
            samples=samples,
            messages_total=messages,
            base_us=base_us,
            flow=flow,
        )
    )
    per_message = samples * len(TAGS)
    expected = (messages // len(devices)) * len(devices) * per_message
    cpu_before = thread_cpu()
    start = publishers.go()
    stored, finished = wait_stored(
        runtime,
        stored_before + expected,
        publishers,
        start,
        timeout=PLAN.drain_timeout_s + 60,
        per_message=per_message,
    )
    points = stored - stored_before
    cpu_us = cpu_per_message(cpu_before, int(points // per_message))
    pub = summarize(publishers.reports())
    span = finished - pub["first_publish"]
    return {
        "publishers": pub,
        "cpu_us_per_msg": cpu_us,
        "expected_points": expected,
        "points_stored": int(points),
        "complete": points >= expected,
        "points_duplicate": int(counter(metrics.points_duplicate) - dup_before),
        "dead_letters": int(labelled_total(metrics.dead_letters) - dead_before),
        "shed": int(labelled_total(metrics.dropped) - dropped_before),
        "seconds": span,
        "points_s": points / span,
        "msgs_s": points / per_message / span,
    }


def run_overload(
    runtime: Any, devices: list[str], host: str, port: int, sys_drops: BrokerSys, base_us: int
) -> dict[str, Any]:
    metrics = runtime.metrics
    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    timeline: list[dict[str, float]] = []
    sampling = threading.Event()

    def sample() -> None:
        t0 = time.time()
        while not sampling.is_set():
            timeline.append(
                {
                    "t": round(time.time() - t0, 2),
                    "rss_mb": proc.memory_info().rss / 1e6,
                    "queue_depth": runtime.pipeline.queue_depth,
                    "points_stored": counter(metrics.points_stored),
                    "shed": labelled_total(metrics.dropped),
                }
            )
            sampling.wait(0.5)

    sys_before = sys_drops.before(time.time())
    received_before = labelled_total(metrics.messages)
    stored_before = counter(metrics.points_stored)
    publishers = Publishers(
        jobs_for(
            PLAN,
            host,
            port,
            devices,
            samples=PLAN.samples_per_batch,
            duration_s=PLAN.overload_s,
            base_us=base_us,
        )
    )
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = publishers.go()
    pub = summarize(publishers.reports(timeout=PLAN.overload_s + 120))
    end_publish = pub["first_publish"] + pub["publish_s"]
    stored_at_end = counter(metrics.points_stored)
    # Let the pipeline drain what it was given; it stops when the counter stops moving.
    _value, drained_at = wait_stored(
        runtime, float("inf"), publishers, start, PLAN.overload_s + PLAN.drain_timeout_s
    )
    stored_after_drain = counter(metrics.points_stored)
    recovery_s = probe(runtime, devices, host, port, base_us + DAY_US // 16)
    sampling.set()
    sampler.join()
    sys_after = sys_drops.after(end_publish) if sys_before is not None else None
    stored = stored_after_drain - stored_before
    absorbed = (stored_at_end - stored_before) / max(pub["publish_s"], 1e-9)
    offered = pub["sent"] * PLAN.samples_per_batch * len(TAGS) / max(pub["publish_s"], 1e-9)
    return {
        "publishers": pub,
        "offered_points_s": offered,
        "absorbed_points_s": absorbed,
        "overload_factor": offered / absorbed if absorbed else float("inf"),
        "points_stored": int(stored),
        "points_offered": pub["sent"] * PLAN.samples_per_batch * len(TAGS),
        "rss_before_mb": rss_before / 1e6,
        "max_rss_mb": max(s["rss_mb"] for s in timeline),
        "max_queue_depth": max(s["queue_depth"] for s in timeline),
        "shed_by_pipeline": int(timeline[-1]["shed"] - timeline[0]["shed"]),
        "broker_dropped": sys_delta(sys_before, sys_after),
        "not_delivered": pub["acked_by_broker"]
        - int(labelled_total(metrics.messages) - received_before),
        "drain_s": drained_at - end_publish,
        "recovery_s": recovery_s,
        "timeline": timeline,
    }


# --- report --------------------------------------------------------------------------------------


def table_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """The summary: one row per figure, PASS/FAIL where there is a target."""
    rows: list[dict[str, str]] = []

    def row(
        what: str, value: str, target: str = "", ok: bool | None = None, note: str = ""
    ) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        rows.append(
            {"what": what, "value": value, "target": target, "verdict": verdict, "note": note}
        )

    single = results.get("single")
    if single:
        ratios = ", ".join(f"{r:.2f}" for r in single["ratios"])
        row(
            "baseline: bare paho subscriber, 1-sample msgs",
            f"{single['baseline_msgs_s']:,.0f} msg/s",
            note=f"median of {len(single['rounds'])} rounds, {single['baseline_lost']:,} msgs lost",
        )
        row(
            "pipeline, 1-sample msgs (10 values), DuckDB",
            f"{single['pipeline_msgs_s']:,.0f} msg/s ({single['pipeline_points_s']:,.0f} pts/s)",
            note=f"median; {_completeness(single)}",
        )
        row(
            "  ratio to baseline",
            f"{single['ratio']:.2f}",
            f">= {TARGETS['single_ratio']}",
            single["ratio"] >= TARGETS["single_ratio"] and single["complete"],
            f"per round: {ratios}",
        )
        row(
            "  CPU per message in the measured process",
            f"{single['pipeline_cpu_us_per_msg']:,.0f} µs",
            note=f"baseline {single['baseline_cpu_us_per_msg']:,.0f} µs (medians; all threads "
            "but the bench's main thread)",
        )
    for name, label, key in (
        ("batched_duckdb", "DuckDB", "batched_duckdb_points_s"),
        ("batched_postgres", "PostgreSQL", "batched_postgres_points_s"),
    ):
        phase = results.get(name)
        if phase:
            row(
                f"pipeline, {PLAN.samples_per_batch}-sample msgs, {label}",
                f"{phase['points_s']:,.0f} pts/s ({phase['msgs_s']:,.0f} msg/s)",
                f">= {TARGETS[key]:,}",
                phase["points_s"] >= TARGETS[key] and phase["complete"],
                _completeness(phase),
            )
        elif name == "batched_postgres" and "postgres_error" in results:
            row(
                f"pipeline, {PLAN.samples_per_batch}-sample msgs, {label}",
                "failed",
                f">= {TARGETS[key]:,}",
                False,
                results["postgres_error"],
            )
    over = results.get("overload")
    if over:
        row(
            f"overload {PLAN.overload_s:.0f} s: max RSS of the bench process",
            f"{over['max_rss_mb']:,.0f} MB",
            f"< {TARGETS['overload_max_rss_mb']} MB",
            over["max_rss_mb"] < TARGETS["overload_max_rss_mb"],
            f"{over['rss_before_mb']:,.0f} MB before",
        )
        row(
            "  offered / absorbed while publishing",
            f"{over['offered_points_s']:,.0f} / {over['absorbed_points_s']:,.0f} pts/s",
            ">= 10x",
            over["overload_factor"] >= 10,
            f"{over['overload_factor']:.1f}x",
        )
        row(
            "  max queue depth / shed by the pipeline",
            f"{over['max_queue_depth']:,} / {over['shed_by_pipeline']:,} msgs",
        )
        dropped = over["broker_dropped"]
        row(
            "  acknowledged by the broker, never delivered to ingest",
            f"{over['not_delivered']:,} of {over['publishers']['acked_by_broker']:,} msgs",
            note="$SYS dropped: " + ("n/a" if dropped is None else f"{dropped:,}"),
        )
        recovery = over["recovery_s"]
        row(
            "  after the overload: fresh messages stored",
            "never (20 s)" if recovery is None else f"after {recovery:.2f} s",
            "stored",
            recovery is not None,
            "one message per device, published once the pipeline had drained",
        )
        row(
            "  stored / offered points",
            f"{over['points_stored']:,} / {over['points_offered']:,}",
            note=f"drained in {over['drain_s']:.1f} s after publishing stopped",
        )
    return rows


def print_table(results: dict[str, Any], rows: list[dict[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    machine_info = results["machine"]
    table = Table(
        title=f"Ingest through {results['broker']} "
        f"({machine_info['nproc']} CPUs, {machine_info['cpu']})"
    )
    for column in ("what", "value", "target", "verdict", "note"):
        table.add_column(column)
    for r in rows:
        style = {"PASS": "green", "FAIL": "red"}.get(r["verdict"], "")
        verdict = f"[{style}]{r['verdict']}[/]" if style else ""
        table.add_row(r["what"], r["value"], r["target"], verdict, r["note"])
    Console(width=170).print(table)


def _completeness(phase: dict[str, Any]) -> str:
    if phase["complete"]:
        took = f" in {phase['seconds']:.1f} s" if "seconds" in phase else ""
        return f"all {phase['expected_points']:,} pts stored{took}"
    return f"INCOMPLETE: {phase['points_stored']:,} of {phase['expected_points']:,} pts stored"


def markdown(rows: list[dict[str, str]]) -> str:
    lines = ["| What | Value | Target | Verdict | Note |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['what'].strip()} | {r['value']} | {r['target']} | {r['verdict']} | {r['note']} |"
        for r in rows
    ]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------

PLAN = Plan()
PHASES = ("single", "batched_duckdb", "batched_postgres", "overload")


def main() -> None:
    global PLAN
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("clusterbrain.connectors.mqtt").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 8 s of overload")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--only", default="", help=f"comma-separated phases of {','.join(PHASES)}")
    args = parser.parse_args()
    PLAN = QUICK if args.quick else Plan()
    host, port = args.host, args.port
    began = time.time()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "plan": asdict(PLAN),
        "quick": args.quick,
        "broker": broker_version(host, port),
        "targets": TARGETS,
    }
    sys_drops = BrokerSys(host, port)
    base_us = int(time.time() * 1_000_000) - 2 * DAY_US
    phase_us = DAY_US // 8  # each phase writes its own time range

    def step(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        print(f"[{time.time() - began:6.1f} s] {name} ...", flush=True)
        results[name] = fn()

    wanted = set(args.only.split(",")) if args.only else set(PHASES)
    if args.skip_postgres:
        wanted.discard("batched_postgres")

    def pipeline_step(runtime: Any, devices: list[str], name: str, offset: int) -> None:
        if name not in wanted:
            return
        step(
            name,
            lambda: run_pipeline(
                runtime,
                devices,
                host,
                port,
                samples=PLAN.samples_per_batch,
                messages=PLAN.batched_messages,
                base_us=base_us + offset * phase_us,
                flow=PLAN.flow_batched,
            ),
        )

    try:
        with tempfile.TemporaryDirectory(prefix="cb-bench-ingest-") as tmp:
            folder = Path(tmp)
            if "single" in wanted:
                step("single", lambda: run_single_rounds(folder, host, port, base_us, phase_us))
            if "batched_duckdb" in wanted:
                with platform(folder / "duckdb", host, port, "duckdb") as (runtime, devices):
                    pipeline_step(runtime, devices, "batched_duckdb", 2)
            if "batched_postgres" in wanted:
                try:
                    with (
                        fresh_postgres_database() as url,
                        platform(folder / "postgres", host, port, "postgres", url) as pg,
                    ):
                        pipeline_step(*pg, "batched_postgres", 3)
                except Exception as exc:  # report it, do not hide the other figures
                    results["postgres_error"] = f"{type(exc).__name__}: {exc}"
                    print(f"PostgreSQL phase failed: {results['postgres_error']}", file=sys.stderr)
            if "overload" in wanted:
                with platform(folder / "overload", host, port, "duckdb") as (runtime, devices):
                    step(
                        "overload",
                        lambda: run_overload(
                            runtime, devices, host, port, sys_drops, base_us + 4 * phase_us
                        ),
                    )
    finally:
        results["broker_dropped_samples"] = sys_drops.samples
        sys_drops.close()
    results["total_s"] = time.time() - began
    rows = table_rows(results)
    print_table(results, rows)
    results["table"] = rows
    results["markdown"] = markdown(rows)
    path = write_results("ingest", results)
    print(f"total {results['total_s']:.0f} s; results in {path}")


def broker_version(host: str, port: int) -> str:
    got: queue.Queue[str] = queue.Queue()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"cb-bench-ver-{uuid.uuid4().hex[:8]}"
    )
    client.on_connect = lambda c, *_: c.subscribe("$SYS/broker/version")
    client.on_message = lambda _c, _u, m: got.put(m.payload.decode(errors="replace"))
    try:
        client.connect(host, port)
    except OSError as exc:
        raise SystemExit(f"no MQTT broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        return got.get(timeout=3)
    except queue.Empty:
        return "unknown version"
    finally:
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    main()
