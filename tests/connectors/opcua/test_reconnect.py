"""The server process killed (SIGKILL) and restarted on the same port, twenty times over."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from clusterbrain.connectors.opcua.client import OpcUaSource
from clusterbrain.connectors.opcua.config import OpcUaConfig
from clusterbrain.sim.opcua_server import SimServerConfig

RESTARTS = 20
RECONNECT_WITHIN_S = 10.0


async def _start(config: SimServerConfig) -> asyncio.subprocess.Process:
    """The simulated server as a process; returns once it listens."""
    assert config.cache_dir is not None
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clusterbrain.sim.opcua_server",
        "--port",
        str(config.port),
        "--interval",
        "0.2",
        "--cache",
        str(config.cache_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line.decode().startswith("ready opc.tcp://"), line
    return process


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``condition`` holds; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.slow
def test_reconnects_after_each_kill_with_one_subscription(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    config = sim_config()

    async def scenario() -> list[float]:
        process = await _start(config)
        ids = {
            "zone1": "ns=2;s=IMM1.InjectionUnit.TemperatureZones.Zone1.ActualTemperature",
            "server_subscriptions": "ns=2;s=SimDiagnostics.Subscriptions",
        }
        source = OpcUaSource(
            OpcUaConfig.model_validate(
                {
                    "name": "imm1",
                    "endpoint": config.endpoint,
                    "publishing_interval_ms": 100,
                    "keepalive_s": 5,
                    "request_timeout_s": 3,
                    "reconnect_initial_s": 0.05,
                    "reconnect_max_s": 0.5,
                    "nodes": [{"tag": tag, "node_id": node} for tag, node in ids.items()],
                }
            )
        )
        out = collector()

        def fresh(tag: str, since_us: int) -> list[Any]:
            return [r for r in out.of(tag) if r.ts_us > since_us]

        waits = []
        try:
            async with running(source, out):
                await out.wait_for(lambda c: len(c.of("zone1")) > 0, 30)
                for restart in range(1, RESTARTS + 1):
                    killed_us = time.time_ns() // 1000
                    process.kill()
                    await process.wait()
                    await _until(lambda: not source.counters.connected, 10, "loss seen")
                    process = await _start(config)
                    waits.append(
                        await _until(
                            lambda since=killed_us, n=restart: (
                                bool(fresh("zone1", since)) and source.counters.reconnects == n
                            ),
                            RECONNECT_WITHIN_S,
                            f"data after restart {restart}",
                        )
                    )
                    # One subscription here, and one on the new server: none left over.
                    assert source.counters.extra["subscriptions"] == 1
                    await _until(
                        lambda since=killed_us: any(
                            r.value == 1 for r in fresh("server_subscriptions", since)
                        ),
                        RECONNECT_WITHIN_S,
                        "server counts our subscription",
                    )
                    assert {r.value for r in fresh("server_subscriptions", killed_us)} <= {0, 1}
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert source.counters.reconnects == RESTARTS
        assert source.counters.extra["subscriptions"] == 0  # stopped: the session is closed
        return waits

    waits = asyncio.run(asyncio.wait_for(scenario(), 600))
    print(f"reconnect after restart: max {max(waits):.2f} s, mean {sum(waits) / len(waits):.2f} s")
    assert len(waits) == RESTARTS and max(waits) < RECONNECT_WITHIN_S


def test_a_hung_server_is_noticed_by_the_keepalive_probe(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    """SIGSTOP keeps the socket open but silent: only the keep-alive probe can tell."""
    config = sim_config()

    async def scenario() -> None:
        process = await _start(config)
        source = OpcUaSource(
            OpcUaConfig.model_validate(
                {
                    "name": "imm1",
                    "endpoint": config.endpoint,
                    "publishing_interval_ms": 100,
                    "keepalive_s": 1,
                    "request_timeout_s": 1,
                    "reconnect_initial_s": 0.05,
                    "reconnect_max_s": 0.5,
                    "nodes": [
                        {
                            "tag": "zone1",
                            "node_id": "ns=2;s=IMM1.InjectionUnit.TemperatureZones.Zone1"
                            ".ActualTemperature",
                        }
                    ],
                }
            )
        )
        out = collector()
        try:
            async with running(source, out):
                await out.wait_for(lambda c: len(c.readings) > 0, 30)
                process.send_signal(signal.SIGSTOP)
                stopped_us = time.time_ns() // 1000
                await _until(lambda: not source.counters.connected, 10, "hang noticed")
                process.send_signal(signal.SIGCONT)
                await _until(
                    lambda: (
                        source.counters.reconnects == 1
                        and any(r.ts_us > stopped_us for r in out.readings)
                    ),
                    RECONNECT_WITHIN_S,
                    "data after the hang",
                )
                assert source.counters.extra["subscriptions"] == 1
        finally:
            process.kill()
            await process.wait()

    asyncio.run(asyncio.wait_for(scenario(), 120))
