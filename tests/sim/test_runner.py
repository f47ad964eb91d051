"""The simulator against a real mosquitto: topics, payloads, credentials, batching, ground truth."""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from clusterbrain.sim.profiles import PROFILES
from clusterbrain.sim.runner import SimulatedDevice, Simulator, iso_utc, telemetry_topic
from clusterbrain.sim.signals import FaultKind
from support.fixtures_mqtt import MqttPeer
from support.mosquitto import MosquittoProcess
from support.services import free_port

pytestmark = pytest.mark.mosquitto

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
DEVICES = [
    SimulatedDevice("im-01", "s3cret-im", "injection_moulding", "注塑机 1号"),
    SimulatedDevice("cnc-01", "s3cret-cnc", "cnc", "CNC 1"),
    SimulatedDevice("ac-01", "s3cret-ac", "air_compressor", "空压机"),
    SimulatedDevice("pm-01", "s3cret-pm", "power_meter", "车间总表"),
]
KIND = {d.device_id: d.kind for d in DEVICES}
START = 1_795_568_400.0  # 2026-11-25 01:00 UTC


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    process = MosquittoProcess(tmp_path / "mosquitto")
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def listener(broker: MosquittoProcess) -> Iterator[MqttPeer]:
    peer = MqttPeer(broker.host, broker.port)
    assert not peer.connect().is_failure
    assert not peer.subscribe("cb/v1/+/telemetry", qos=1).is_failure
    try:
        yield peer
    finally:
        peer.close()


def drain(peer: MqttPeer, settle: float = 0.5) -> list[mqtt.MQTTMessage]:
    """Every message that arrives until the line has been quiet for ``settle`` seconds."""
    messages = []
    try:
        while True:
            messages.append(peer.messages.get(timeout=settle))
    except queue.Empty:
        return messages


def devices_heard(peer: MqttPeer, within: float) -> set[str]:
    """Devices heard from before the deadline, stopping early once every device spoke."""
    heard: set[str] = set()
    deadline = time.monotonic() + within
    while heard != set(KIND) and time.monotonic() < deadline:
        try:
            heard.add(device_of(peer.messages.get(timeout=0.1)))
        except queue.Empty:
            continue
    return heard


def samples_of(message: mqtt.MQTTMessage) -> list[dict[str, Any]]:
    body = orjson.loads(message.payload)
    return body if isinstance(body, list) else [body]


def device_of(message: mqtt.MQTTMessage) -> str:
    prefix, version, device_id, leaf = message.topic.split("/")
    assert (prefix, version, leaf) == ("cb", "v1", "telemetry")
    return device_id


def simulator(broker: MosquittoProcess, **options: Any) -> Simulator:
    options = {"speed": 10.0, "start_time": START, **options}
    return Simulator(DEVICES, broker.host, broker.port, **options)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_device_publishes_every_tag_on_its_own_topic(
    broker: MosquittoProcess, listener: MqttPeer, protocol: str
) -> None:
    stats = simulator(broker, protocol=protocol).run_for(1.5)
    messages = drain(listener)
    assert {device_of(m) for m in messages} == set(KIND)
    for message in messages:
        (sample,) = samples_of(message)
        assert TS.match(sample["ts"])
        assert set(sample["values"]) == set(PROFILES[KIND[device_of(message)]].tag_names)
    assert stats.publish_errors == 0 and stats.connect_failures == 0
    assert stats.messages_published == len(messages)
    tags = sum(len(samples_of(m)[0]["values"]) for m in messages)
    assert stats.points_published == tags
    log = broker.log_text()
    for device in DEVICES:  # own client id and user name; mosquitto logs 3.1.1 as p2
        assert f"as {device.device_id} (p{'5' if protocol == '5' else '2'}" in log
        assert f"u'{device.device_id}'" in log


def test_samples_are_one_interval_apart_in_simulated_time(
    broker: MosquittoProcess, listener: MqttPeer
) -> None:
    simulator(broker, interval_s=2.0, speed=20.0).run_for(1.0)
    stamps = [samples_of(m)[0]["ts"] for m in drain(listener) if device_of(m) == "pm-01"]
    assert stamps[0] == iso_utc(START)
    assert stamps == [iso_utc(START + 2.0 * i) for i in range(len(stamps))]


def test_batched_messages_carry_a_list_of_samples(
    broker: MosquittoProcess, listener: MqttPeer
) -> None:
    stats = simulator(broker, batch=5, speed=40.0).run_for(1.0)
    messages = drain(listener)
    sizes = [len(samples_of(m)) for m in messages]
    assert sizes and all(1 <= n <= 5 for n in sizes) and sizes.count(5) >= len(sizes) - 4
    assert all(isinstance(orjson.loads(m.payload), list) for m in messages)
    points = sum(len(s["values"]) for m in messages for s in samples_of(m))
    assert stats.points_published == points
    assert stats.samples_generated == sum(sizes)


def test_a_forced_fault_is_published_and_written_to_the_ground_truth(
    broker: MosquittoProcess, listener: MqttPeer, tmp_path: Path
) -> None:
    truth = tmp_path / "truth" / "faults.jsonl"
    sim = simulator(broker, ground_truth_path=truth)
    sim.start()
    try:
        time.sleep(0.3)
        event = sim.inject_fault("cnc-01", FaultKind.UNPLANNED_STOP, 5.0)
        time.sleep(1.2)
    finally:
        sim.stop()
    (line,) = truth.read_text().splitlines()
    record = orjson.loads(line)
    assert record == {
        "device_id": "cnc-01",
        "machine": "CNC 1",
        "kind": "cnc",
        "fault": "unplanned_stop",
        "start": iso_utc(event.start),
        "end": iso_utc(event.start + 5.0),
        "tags": PROFILES["cnc"].tag_names,
    }
    states = {
        s["ts"]: s["values"]["state"]
        for m in drain(listener)
        if device_of(m) == "cnc-01"
        for s in samples_of(m)
    }
    during = [state for ts, state in states.items() if record["start"] <= ts < record["end"]]
    assert during and set(during) == {"down"}
    assert sim.stats.faults_started == 1


def test_random_faults_follow_the_rate_and_are_logged(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    truth = tmp_path / "faults.jsonl"
    # 600 simulated seconds per wall second at 30 faults per machine-hour.
    stats = simulator(
        broker, speed=600.0, fault_rate_per_hour=30.0, ground_truth_path=truth
    ).run_for(1.5)
    records = [orjson.loads(line) for line in truth.read_text().splitlines()]
    assert len(records) == stats.faults_started > 0
    for record in records:
        assert record["device_id"] in KIND and record["tags"]
        assert record["start"] < record["end"]


def test_devices_reconnect_after_a_broker_restart(
    broker: MosquittoProcess, listener: MqttPeer
) -> None:
    sim = simulator(broker, reconnect_delay=(1, 2))
    sim.start()
    try:
        time.sleep(0.5)
        listener.close()
        broker.restart()
        peer = MqttPeer(broker.host, broker.port)
        assert not peer.connect().is_failure
        peer.subscribe("cb/v1/+/telemetry")
        arrived = devices_heard(peer, within=5.0)
        peer.close()
    finally:
        stats = sim.stop()
    assert arrived == set(KIND)
    assert stats.disconnects >= len(DEVICES)


def test_an_unreachable_broker_sheds_beyond_the_bounded_queue() -> None:
    sim = Simulator(DEVICES[:1], "127.0.0.1", free_port(), speed=100.0, max_queued_messages=5)
    sim.start(connect_timeout=0.2)
    time.sleep(0.5)
    stats = sim.stop(drain_timeout=0.1)
    assert stats.messages_published == 0
    assert stats.messages_sent <= 5
    assert stats.publish_errors >= stats.samples_generated - 5 > 0


def test_backfill_is_deterministic_and_covers_the_range(tmp_path: Path) -> None:
    def backfill(truth: Path) -> list[tuple[str, bytes]]:
        sim = Simulator(
            DEVICES, "127.0.0.1", 1, batch=30, fault_rate_per_hour=1.0, ground_truth_path=truth
        )
        return [(m.topic, m.payload) for m in sim.backfill(START, START + 6 * 3600, 60.0)]

    first = backfill(tmp_path / "a.jsonl")
    assert first == backfill(tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    for device in DEVICES:
        mine = [orjson.loads(p) for t, p in first if t == telemetry_topic(device.device_id)]
        stamps = [s["ts"] for batch in mine for s in batch]
        assert len(stamps) == 6 * 60
        assert stamps[0] == iso_utc(START) and stamps[-1] == iso_utc(START + 6 * 3600 - 60)


@pytest.mark.parametrize(
    "options",
    [{"batch": 0}, {"interval_s": 0.0}, {"speed": -1.0}, {"protocol": "3.1"}, {"qos": 3}],
)
def test_invalid_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Simulator(DEVICES, "127.0.0.1", 1883, **options)


def test_duplicate_ids_and_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError):
        Simulator([DEVICES[0], DEVICES[0]], "127.0.0.1", 1883)
    with pytest.raises(ValueError):
        Simulator([SimulatedDevice("x", "s", "kiln", "窑炉")], "127.0.0.1", 1883)


def test_mqtt_v5_is_the_default_protocol() -> None:
    assert Simulator(DEVICES, "127.0.0.1", 1883).protocol == "5"
    assert MQTTProtocolVersion.MQTTv5 == mqtt.MQTTv5


def test_a_start_after_a_backfill_continues_its_models() -> None:
    device = SimulatedDevice("e1-imm-09", "secret", "injection_moulding", "IMM-09")
    simulator = Simulator([device], "127.0.0.1", 1, fault_rate_per_hour=0, seed=3)
    messages = list(simulator.backfill(1_790_000_000.0, 1_790_003_600.0, 30.0, batch=60))
    last = orjson.loads(messages[-1].payload)[-1]["values"]
    continued = simulator._history["e1-imm-09"].model.step(1_790_003_601.0, 1.0)
    assert last["good_count"] > 50  # an hour of production
    assert continued["good_count"] - last["good_count"] in (0, 1)  # the same machine goes on
    assert simulator._history["e1-imm-09"].buffer == []


def test_samples_on_the_wall_clock_are_stamped_when_they_are_taken(
    broker: MosquittoProcess, listener: MqttPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connecting many devices takes a while; samples are not stamped with the moment before."""
    connect = Simulator._await_connections

    def slow_connections(self: Simulator, timeout: float) -> None:
        connect(self, timeout)
        time.sleep(1.0)

    monkeypatch.setattr(Simulator, "_await_connections", slow_connections)
    before = time.time()
    Simulator(DEVICES[:1], broker.host, broker.port, interval_s=0.5).run_for(0.6)
    stamps = [samples_of(m)[0]["ts"] for m in drain(listener)]
    assert stamps and stamps[0] >= iso_utc(before + 1.0)
