"""Broker fixtures; tests/conftest.py re-exports them so every test module can ask for them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.mosquitto import MosquittoProcess


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """A plain mosquitto that allows anonymous clients, with persistence, for one test."""
    broker = MosquittoProcess(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def mosquitto_dynsec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """A mosquitto with the dynamic security plugin, no anonymous access, one admin client."""
    broker = MosquittoProcess(tmp_path_factory.mktemp("mosquitto-dynsec"), dynsec=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
