"""Shared fixtures. Real services only: PostgreSQL, mosquitto processes, DuckDB in tmp folders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.services import fresh_postgres_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_postgres_database() as url:
        yield url
