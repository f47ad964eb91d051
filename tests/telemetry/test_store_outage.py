"""PostgreSQL unreachable for 30 s: ingest keeps accepting into the spool and replays it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.settings import Settings
from clusterbrain.telemetry.pipeline import MessageOutcome, RawMessage
from support.tcp_proxy import TcpProxy
from support.world import seed_world

T0 = datetime(2026, 11, 2, tzinfo=UTC)
OUTAGE_S = 30


def _message(device_id: str, i: int, acked: list[int], lock: threading.Lock) -> RawMessage:
    ts = (T0 + timedelta(milliseconds=i)).isoformat()
    payload = orjson.dumps({"ts": ts, "values": {"temperature": float(i % 300), "count": i}})

    def ack(outcome: MessageOutcome) -> None:
        with lock:
            acked.append(outcome.points)

    return RawMessage(device_id, payload, "mqtt", f"cb/v1/{device_id}/telemetry", on_done=ack)


def _rows(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        try:
            row = conn.execute(query).fetchone()
        except psycopg.errors.UndefinedTable:  # the store creates its tables on first write
            return 0
    return int(row[0]) if row and row[0] is not None else 0


@pytest.mark.slow
def test_store_outage_spools_and_replays_exactly_once(tmp_path: Path, postgres_url: str) -> None:
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TcpProxy(host, int(port)).start()
    proxied = postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
        telemetry_backend="postgres",
        telemetry_postgres_url=proxied + "?connect_timeout=2",
    )
    runtime = Runtime(settings)
    world = seed_world(runtime)
    runtime.start_ingest(mqtt=False)
    acked: list[int] = []
    lock = threading.Lock()
    device = world.a.device_id
    try:
        for i in range(500):
            assert runtime.pipeline.submit(_message(device, i, acked, lock), timeout=5)
        assert _wait(lambda: _rows(postgres_url, "SELECT count(*) FROM points") == 1000)

        proxy.cut()
        outage_started = time.monotonic()
        sent = 500
        while time.monotonic() - outage_started < OUTAGE_S:
            for _ in range(100):
                assert runtime.pipeline.submit(_message(device, sent, acked, lock), timeout=5)
                sent += 1
            time.sleep(0.5)
        # Everything sent during the outage was accepted (acknowledged) into the spool.
        assert _wait(lambda: len(acked) == sent, timeout=15)
        assert len(runtime.pipeline.spool) > 0
        assert runtime.metrics.store_errors._value.get() > 0
        assert runtime.metrics.spooled_points._value.get() >= 2 * (sent - 500)

        proxy.restore()
        assert _wait(lambda: len(runtime.pipeline.spool) == 0, timeout=60)
        assert _rows(postgres_url, "SELECT count(*) FROM points") == 2 * sent
        distinct = "SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM points) d"
        assert _rows(postgres_url, distinct) == 2 * sent
        assert _rows(postgres_url, "SELECT sum(cnt) FROM rollup_1m") == 2 * sent
    finally:
        runtime.close()
        proxy.stop()


def _wait(condition, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return bool(condition())
