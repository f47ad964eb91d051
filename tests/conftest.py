"""Shared fixtures. Real services only: PostgreSQL, mosquitto processes, DuckDB in tmp folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clusterbrain.api.app import create_app
from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.settings import Settings
from support.fixtures_mqtt import mosquitto, mosquitto_dynsec  # noqa: F401  (fixtures)
from support.services import fresh_postgres_database
from support.world import World, seed_world


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The metadata database, once on SQLite and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    with fresh_postgres_database("cbmeta") as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, metadata_url: str) -> Settings:
    return Settings(var_dir=tmp_path / "var", database_url=metadata_url, console=False)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings)
    rt.start_ingest(mqtt=False)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


@pytest.fixture
def world(runtime: Runtime) -> World:
    return seed_world(runtime)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests share one live console and one Chromium per process: under ``pytest -n``
    (``--dist loadgroup``, as ``make test`` runs) they all go to the same worker."""
    for item in items:
        if "tests/ui/" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("console"))
