"""Fixtures of the OPC UA connector tests: real asyncua servers (in process or as a process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clusterbrain.connectors.opcua.client import ensure_client_certificate
from clusterbrain.connectors.source import Emit, FieldSource, Reading
from clusterbrain.sim.opcua_server import SimServerConfig, build_address_space_cache
from support.services import free_port


@pytest.fixture(autouse=True)
def _quiet_asyncua() -> Iterator[None]:
    """asyncua logs every dropped connection at warning level; the tests drop many on purpose."""
    loggers = [logging.getLogger(name) for name in ("asyncua", "clusterbrain.connectors.opcua")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture(scope="session")
def aspace_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The standard address space, shelved once in pytest's cache (a server then starts fast)."""
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    if cache is not None:
        directory = Path(cache.mkdir("opcua-address-space"))
    else:
        directory = tmp_path_factory.mktemp("opcua-address-space")
    asyncio.run(build_address_space_cache(directory))
    return directory


@pytest.fixture
def sim_config(aspace_cache: Path) -> Callable[..., SimServerConfig]:
    """A factory of simulated-server configs on a free port; keyword arguments override."""

    def make(**overrides: Any) -> SimServerConfig:
        base = SimServerConfig(port=free_port(), cache_dir=aspace_cache, update_interval_s=None)
        return replace(base, **overrides)

    return make


@pytest.fixture(scope="session")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The gateway's self-signed certificate and key, made once."""
    directory = tmp_path_factory.mktemp("gateway-pki")
    certificate, key = directory / "gateway_cert.der", directory / "gateway_key.pem"
    asyncio.run(ensure_client_certificate(certificate, key))
    return certificate, key


class Collector:
    """The ``emit`` of a test: keeps every batch, and waits for readings to arrive."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []

    def __call__(self, batch: Sequence[Reading]) -> None:
        self.batches.append(list(batch))

    @property
    def readings(self) -> list[Reading]:
        return [reading for batch in self.batches for reading in batch]

    def of(self, tag: str) -> list[Reading]:
        return [reading for reading in self.readings if reading.tag == tag]

    async def wait_for(self, predicate: Callable[[Collector], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; got {self.readings[-10:]}")
            await asyncio.sleep(0.02)


@pytest.fixture
def collector() -> Callable[[], Collector]:
    return Collector


@contextlib.asynccontextmanager
async def _running(source: FieldSource, emit: Emit) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(emit, stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


@pytest.fixture
def running() -> Callable[
    [FieldSource, Emit], contextlib.AbstractAsyncContextManager[asyncio.Event]
]:
    """``async with running(source, emit):`` runs the source until the block ends."""
    return _running
