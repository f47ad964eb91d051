"""Spool limit reached, as a whole process: ``clusterbrain gateway`` with a small spool and no
broker drops its oldest messages and counts them, keeps its memory flat, and replays the newest in
order once the broker is reachable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psutil
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from clusterbrain.sim.modbus_server import BackgroundServer, register_block
from support.mosquitto import MosquittoProcess
from support.services import free_port
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.mosquitto
GATEWAY = "gw-spool"
SPOOL_MB = 0.25
RSS_LIMIT_MB = 150.0
"""The gateway's memory budget (docs/gateway.md); this one reads 1,000 registers."""
RSS_GROWTH_MB = 15.0
"""How much the RSS may still rise once the spool is full: a bounded spool means no growth,
this is room for the allocator's noise."""
DEADLINE_S = 30.0


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def _until(check: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Received:
    """What a subscriber on the real broker gets of the gateway's field telemetry, in order."""

    def __init__(self, port: int) -> None:
        self.messages: list[list[dict[str, object]]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="spool-test-sub")
        self.client.on_connect = lambda c, *_: c.subscribe(f"cb/v1/{GATEWAY}/gateway/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the test's subscriber could not subscribe"

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(orjson.loads(msg.payload))

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def gateway_process(config: Path, log: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("CB_GATEWAY_SECRET", None)
    with log.open("w") as handle:
        child = subprocess.Popen(
            [sys.executable, "-m", "clusterbrain.cli", "gateway", "--config", str(config)],
            stdout=handle, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        try:
            yield child
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(DEADLINE_S)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(5)


def test_a_full_spool_drops_the_oldest_counts_them_stays_small_and_replays_the_newest_in_order(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    block = register_block(1000, unit_id=3)
    uplink = TcpProxy("127.0.0.1", mosquitto.port)  # not started: the broker is unreachable
    metrics_port = free_port()
    with BackgroundServer(port=free_port(), devices=[block]) as field:
        config = tmp_path / "gateway.yaml"
        document = {
            "gateway": {"id": GATEWAY, "secret": ""},
            "uplink": {
                "port": uplink.port,
                "reconnect_min_s": 0.5,
                "reconnect_max_s": 1,
                "max_samples_per_message": 8,  # about a poll a message: segments of several
            },
            "spool": {"path": str(tmp_path / "spool"), "max_mb": SPOOL_MB},
            "metrics": {"port": metrics_port},
            "health_interval_s": 3600,  # one health message, at the start: the counts stay exact
            "devices": [
                {
                    "id": "block-1",
                    "protocol": "modbus",
                    "modbus": {
                        "host": "127.0.0.1",
                        "port": field.server.port,
                        "devices": [block.config(5)],
                    },
                }
            ],
        }
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        with gateway_process(config, tmp_path / "gateway.log") as child:
            metrics: dict[str, float] = {}

            def reading() -> bool:
                assert child.poll() is None, (tmp_path / "gateway.log").read_text()
                try:
                    metrics.update(_metrics(metrics_port))
                except OSError:
                    return False
                return metrics.get("cb_gateway_source_reads_total", 0) > 0

            _until(reading, "the gateway to read its field device", 120)
            reading_since_us = time.time_ns() // 1000
            process = psutil.Process(child.pid)
            rss: list[tuple[float, float]] = []  # (dropped so far, RSS MB)
            first_drop: list[float] = []

            def dropped_a_while() -> bool:
                now = _metrics(metrics_port)
                dropped = now["cb_gateway_spool_dropped_total"]
                rss.append((dropped, process.memory_info().rss / 1e6))
                assert now["cb_gateway_spool_bytes"] <= SPOOL_MB * 1024 * 1024
                assert now["cb_gateway_uplink_connected"] == 0
                if dropped and not first_drop:
                    first_drop.append(time.monotonic())
                # segments dropped for some seconds, so that the RSS is watched over a while
                return dropped >= 20 and time.monotonic() - first_drop[0] >= 3

            _until(dropped_a_while, "the full spool to drop messages")
            field.stop()  # the last data: one BAD reading per tag, as the link goes
            _until(
                lambda: _metrics(metrics_port)["cb_gateway_source_connected"] == 0,
                "the gateway to notice its field device is gone",
            )
            time.sleep(0.5)  # the flush after the BAD readings (publish_interval_s 0.2)
            before = _metrics(metrics_port)
            kept = int(before["cb_gateway_spool_pending"])

            received = Received(mosquitto.port)
            try:
                uplink.start()
                _until(lambda: received.count() >= kept, f"{kept} replayed messages")
                _until(
                    lambda: _metrics(metrics_port)["cb_gateway_spool_pending"] == 0,
                    "the spool to be confirmed",
                )
                time.sleep(0.5)  # nothing more may come
                messages = list(received.messages)
            finally:
                received.close()
                uplink.stop()
            child.send_signal(signal.SIGTERM)
            assert child.wait(DEADLINE_S) == 0

    dropped = before["cb_gateway_spool_dropped_total"]
    assert dropped >= 20 and kept > 0
    # the replay is exactly what was kept, in the order it was read
    assert len(messages) == kept
    stamps = [sample["ts"] for message in messages for sample in message]
    assert stamps == sorted(stamps)
    # the oldest went: the first value kept was read well after reading began
    assert stamps[0] * 1000 > reading_since_us
    # the newest stayed: the replay ends with the outage of the field device, every tag BAD
    samples = [sample for message in messages for sample in message]
    last = samples[-1]
    assert isinstance(last["quality"], dict) and set(last["quality"].values()) == {"bad"}
    went_bad = {tag for sample in samples for tag in dict(sample.get("quality") or {})}
    assert went_bad == {point.name for point in block.points}
    # memory: under the budget, and flat while the spool was dropping
    full = [mb for count, mb in rss if count > 0]
    assert max(mb for _, mb in rss) < RSS_LIMIT_MB, rss
    assert max(full) - full[0] < RSS_GROWTH_MB, rss
