"""Runtime settings, read from the environment (``CLUSTERBRAIN_*``) when built, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable. Defaults run the embedded demo on a bare machine."""

    model_config = SettingsConfigDict(env_prefix="CLUSTERBRAIN_", extra="ignore")

    var_dir: Path = Field(default=Path("var"), description="Folder for embedded data files.")
    database_url: str = Field(
        default="", description="Metadata DB URL; empty means SQLite in var_dir."
    )

    telemetry_backend: Literal["duckdb", "postgres"] = "duckdb"
    duckdb_path: Path | None = None
    telemetry_postgres_url: str = Field(
        default="", description="PostgreSQL conninfo for the telemetry store (postgres backend)."
    )

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    mqtt_username: str = ""
    mqtt_password: str = ""
    mqtt_client_id: str = "clusterbrain-ingest"
    mqtt_shared_group: str = "ingest"
    broker_auth: Literal["none", "dynsec"] = "none"
    broker_admin_username: str = "cb-admin"
    broker_admin_password: str = ""
    sparkplug_ingest: bool = Field(
        default=True,
        description="Subscribe to spBv1.0/# as the Sparkplug B host. Sparkplug's seq is per edge "
        "node, so exactly one ingest process may do it: set it false on every other worker.",
    )
    sparkplug_host_id: str = Field(
        default="clusterbrain",
        pattern=r"^[^/+#$][^/+#]*$",
        description="The Sparkplug host application id: its STATE birth and death go to "
        "spBv1.0/STATE/<id> (edge nodes configured with this primary host wait for it).",
    )

    ingest_queue_size: int = 20_000
    ingest_batch_size: int = 5_000
    ingest_batch_wait_s: float = 0.05
    max_payload_bytes: int = 256 * 1024
    max_future_skew_s: float = 300.0
    spool_dir: Path | None = None
    spool_max_bytes: int = 1024 * 1024 * 1024

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_sender: str = "clusterbrain@localhost"
    smtp_starttls: bool = False
    report_check_interval_s: float = 60.0

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    console: bool = Field(default=True, description="Serve the web console at /console.")
    console_secret: str = Field(
        default="", description="Signs console sessions; empty: a random one kept in var_dir."
    )
    console_refresh_s: float = Field(default=1.0, description="Live pages poll this often.")
    console_strict_i18n: bool = Field(
        default=False, description="Show text missing from the catalogue as ⟦text⟧ (tests)."
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'clusterbrain.db').as_posix()}"

    def resolved_duckdb_path(self) -> Path:
        return self.duckdb_path or self.var_dir / "telemetry.duckdb"

    def resolved_spool_dir(self) -> Path:
        return self.spool_dir or self.var_dir / "spool"
