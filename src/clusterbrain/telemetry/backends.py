"""Choosing and opening the telemetry store named by the settings."""

from __future__ import annotations

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.platform.settings import Settings
from clusterbrain.telemetry.store import TelemetryStore


def open_store(settings: Settings) -> TelemetryStore:
    if settings.telemetry_backend == "duckdb":
        from clusterbrain.telemetry.duckdb.store import DuckDBStore

        path = settings.resolved_duckdb_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return DuckDBStore(path)
    if not settings.telemetry_postgres_url:
        raise InvalidInput(
            "the postgres backend needs CLUSTERBRAIN_TELEMETRY_POSTGRES_URL",
            field="telemetry_postgres_url",
        )
    from clusterbrain.telemetry.postgres.store import PostgresStore

    return PostgresStore(settings.telemetry_postgres_url)
