"""MQTT ingest against a real mosquitto: storage, persistent sessions, kill and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.settings import Settings
from support.fixtures_mqtt import MqttPeer
from support.mosquitto import MosquittoProcess
from support.world import World, seed_world

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _payload(i: int, base: datetime = T0) -> bytes:
    ts = (base + timedelta(milliseconds=i)).isoformat()
    return orjson.dumps({"ts": ts, "values": {"temperature": float(i % 300), "count": i}})


def _wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _settings(tmp_path: Path, broker: MosquittoProcess, client_id: str = "ingest-test") -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
        mqtt_port=broker.port,
        mqtt_client_id=client_id,
    )


def _publisher(broker: MosquittoProcess) -> MqttPeer:
    peer = MqttPeer("127.0.0.1", broker.port, protocol=MQTTProtocolVersion.MQTTv5)
    assert not peer.connect().is_failure
    return peer


def _stored(runtime: Runtime, device_id: str) -> int:
    end = T0 + timedelta(days=1)
    table = runtime.store.query_range(device_id, ["count"], T0, end)
    return int(table.num_rows)


def test_mqtt_single_and_batched_messages_are_stored(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    runtime = Runtime(_settings(tmp_path, mosquitto))
    world = seed_world(runtime)
    runtime.start_ingest(mqtt=True)
    try:
        assert runtime.mqtt is not None and runtime.mqtt.connected
        peer = _publisher(mosquitto)
        topic = f"cb/v1/{world.a.device_id}/telemetry"
        for i in range(100):
            peer.publish(topic, _payload(i))
        batch = [orjson.loads(_payload(i)) for i in range(100, 150)]
        peer.publish(topic, orjson.dumps(batch))
        peer.publish(topic, b"not json")
        peer.publish("cb/v1/unknown-device/telemetry", _payload(1))
        assert _wait_until(lambda: _stored(runtime, world.a.device_id) == 150)
        stats = runtime.metrics.dead_letters
        assert _wait_until(lambda: stats.labels("malformed_json")._value.get() == 1)
        assert stats.labels("unknown_device")._value.get() == 1
        peer.close()
    finally:
        runtime.close()


def test_points_published_while_ingest_is_down_are_stored(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    settings = _settings(tmp_path, mosquitto)
    runtime = Runtime(settings)
    world = seed_world(runtime)
    runtime.start_ingest(mqtt=True)  # creates the persistent session and its subscription
    runtime.close()
    peer = _publisher(mosquitto)
    for i in range(500):
        peer.publish(f"cb/v1/{world.a.device_id}/telemetry", _payload(i))
    peer.close()
    restarted = Runtime(settings)
    restarted.start_ingest(mqtt=True)
    try:
        assert _wait_until(lambda: _stored(restarted, world.a.device_id) == 500)
    finally:
        restarted.close()


def _ingest_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLUSTERBRAIN_VAR_DIR": str(settings.var_dir),
        "CLUSTERBRAIN_DATABASE_URL": settings.database_url,
        "CLUSTERBRAIN_MQTT_PORT": str(settings.mqtt_port),
        "CLUSTERBRAIN_MQTT_CLIENT_ID": settings.mqtt_client_id,
    }
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "clusterbrain.cli", "ingest"], env=env, stdout=handle, stderr=handle
    )


def _publish_stream(
    broker: MosquittoProcess, world: World, total: int, done: threading.Event
) -> None:
    peer = _publisher(broker)
    try:
        for i in range(total):
            device = world.a.device_id if i % 2 == 0 else world.b.device_id
            peer.publish(f"cb/v1/{device}/telemetry", _payload(i))
            if i % 200 == 0:
                time.sleep(0.05)
    finally:
        peer.close()
        done.set()


@pytest.mark.slow
def test_ingest_killed_and_restarted_stores_every_point_exactly_once(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    settings = _settings(tmp_path, mosquitto, client_id="ingest-kill")
    runtime = Runtime(settings)
    world = seed_world(runtime)
    runtime.close()
    log = tmp_path / "ingest.log"
    process = _ingest_process(settings, log)
    # the first worker's persistent session must exist before anything is published: on a loaded
    # machine its imports alone can take longer than a fixed wait (then every point was lost)
    _wait_started(log, 0, time.monotonic() + 120)
    time.sleep(1)
    total, done = 10_000, threading.Event()
    publisher = threading.Thread(target=_publish_stream, args=(mosquitto, world, total, done))
    publisher.start()
    for _ in range(3):
        time.sleep(1.0)
        assert not done.is_set(), "the kill must land while devices publish"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process = _ingest_process(settings, log)
    publisher.join(120)
    assert done.is_set()
    database = settings.resolved_duckdb_path()
    points = 2 * total  # two tags per message
    # DuckDB is one process's file: stop the worker to read, start it again while points are due.
    # Each round runs twice as long as the last, so a loaded machine still drains the backlog.
    deadline, slice_s = time.monotonic() + 150, 3.0
    _stop(process)
    while _count(database, "SELECT count(*) FROM points") < points and time.monotonic() < deadline:
        before = _starts(log)
        process = _ingest_process(settings, log)
        _wait_started(log, before, deadline)  # a loaded machine takes seconds to import it
        time.sleep(slice_s)
        slice_s *= 2
        _stop(process)
    assert _count(database, "SELECT count(*) FROM points") == points, log.read_text()[-3000:]
    distinct = "SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM points)"
    assert _count(database, distinct) == points
    # Rollups count each stored point once, so no redelivery was counted twice either.
    assert _count(database, "SELECT sum(cnt) FROM rollup_1m") == points


def _starts(log: Path) -> int:
    """How many workers have said in the log that they run."""
    return log.read_text(errors="replace").count("ingest running") if log.exists() else 0


def _wait_started(log: Path, before: int, deadline: float) -> None:
    while _starts(log) <= before and time.monotonic() < deadline:
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def _count(database: Path, query: str) -> int:
    with duckdb.connect(str(database), read_only=True) as con:
        row = con.execute(query).fetchone()
    return int(row[0]) if row and row[0] is not None else 0
