"""The running platform: every long-lived object, built from Settings in one place.

Nothing here runs at import. The API app, the CLI's ``serve``/``ingest``/``demo`` and the tests
build a Runtime and pass it on.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.connectors.mqtt.ingest import MqttIngest, MqttIngestConfig
from clusterbrain.connectors.sparkplug.ingest import SparkplugIngest, sparkplug_config
from clusterbrain.devices.broker_auth import BrokerAuth, DynsecBrokerAuth, NullBrokerAuth
from clusterbrain.devices.command_service import settle_ack
from clusterbrain.devices.directory import SqlDeviceDirectory
from clusterbrain.devices.sparkplug import SparkplugDirectory
from clusterbrain.platform.db import make_engine, make_session_factory, utcnow
from clusterbrain.platform.migrate import upgrade
from clusterbrain.platform.notify import SmtpSettings
from clusterbrain.platform.settings import Settings
from clusterbrain.production.alarm_engine import AlarmEngine
from clusterbrain.production.report_service import run_due_reports
from clusterbrain.production.tracking import ProductionTracker
from clusterbrain.telemetry.backends import open_store
from clusterbrain.telemetry.dead_letters import SqlDeadLetterSink
from clusterbrain.telemetry.decode import Limits
from clusterbrain.telemetry.metrics import IngestMetrics
from clusterbrain.telemetry.pipeline import IngestPipeline, PipelineConfig
from clusterbrain.telemetry.spool import Spool
from clusterbrain.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        queue_size=settings.ingest_queue_size,
        batch_messages=settings.ingest_batch_size,
        batch_wait_s=settings.ingest_batch_wait_s,
        limits=Limits(
            max_payload_bytes=settings.max_payload_bytes,
            max_future_us=int(settings.max_future_skew_s * 1_000_000),
        ),
    )


def mqtt_config(settings: Settings, worker_id: str = "") -> MqttIngestConfig:
    client_id = settings.mqtt_client_id + (f"-{worker_id}" if worker_id else "")
    return MqttIngestConfig(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        client_id=client_id,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        protocol=settings.mqtt_protocol,
        shared_group=settings.mqtt_shared_group,
    )


def make_broker_auth(settings: Settings) -> BrokerAuth:
    if settings.broker_auth == "dynsec":
        return DynsecBrokerAuth(
            settings.mqtt_host,
            settings.mqtt_port,
            settings.broker_admin_username,
            settings.broker_admin_password,
        )
    return NullBrokerAuth()


class Registry:
    """The metadata database, the device directory and the broker's credentials, without the
    telemetry store: what provisioning needs. ``clusterbrain simulate`` runs beside a serving
    process, and a DuckDB store is one process's file."""

    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        url = settings.resolved_database_url()
        if migrate:
            upgrade(url)
        self.engine: Engine = make_engine(url)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.directory = SqlDeviceDirectory(self.sessions)
        self.broker_auth: BrokerAuth = make_broker_auth(settings)

    def close(self) -> None:
        self.broker_auth.close()
        self.engine.dispose()


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        broker_auth: BrokerAuth | None = None,
        migrate: bool = True,
    ) -> None:
        self.settings = settings
        url = settings.resolved_database_url()
        if migrate:
            upgrade(url)
        self.engine: Engine = make_engine(url)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.metrics = IngestMetrics()
        self.store: TelemetryStore = open_store(settings)
        self.directory = SqlDeviceDirectory(self.sessions)
        self.broker_auth: BrokerAuth = broker_auth or make_broker_auth(settings)
        self.pipeline = IngestPipeline(
            self.store,
            self.directory,
            SqlDeadLetterSink(self.sessions),
            Spool(settings.resolved_spool_dir(), settings.spool_max_bytes),
            self.metrics,
            pipeline_config(settings),
        )
        self.mqtt: MqttIngest | None = None
        self.sparkplug_directory = SparkplugDirectory(self.sessions)
        self.sparkplug: SparkplugIngest | None = None
        self.alarms = AlarmEngine(self.sessions, self.smtp_settings, self.metrics.registry)
        self.pipeline.add_observer(self.alarms)
        self.tracker = ProductionTracker(self.sessions, self.store, self.metrics.registry)
        self.pipeline.add_observer(self.tracker)
        self._scheduler: threading.Thread | None = None
        self._stopping = threading.Event()

    def smtp_settings(self) -> SmtpSettings:
        s = self.settings
        return SmtpSettings(
            s.smtp_host,
            s.smtp_port,
            s.smtp_username,
            s.smtp_password,
            s.smtp_sender,
            s.smtp_starttls,
        )

    def start_scheduler(self) -> None:
        """Send scheduled reports in the background, checking every report_check_interval_s."""
        if self._scheduler is None:
            self._scheduler = threading.Thread(target=self._schedule, name="reports", daemon=True)
            self._scheduler.start()

    def _schedule(self) -> None:
        while not self._stopping.wait(self.settings.report_check_interval_s):
            try:
                run_due_reports(self.sessions, self.store, self.smtp_settings(), utcnow())
            except Exception:
                log.exception("scheduled reports failed; retrying at the next check")

    def start_ingest(self, *, mqtt: bool = True, worker_id: str = "") -> None:
        """Start the pipeline worker, the alarm engine and, unless told otherwise, MQTT, with
        the Sparkplug B host if ``sparkplug_ingest`` (one process only: docs/sparkplug.md)."""
        self.pipeline.start()
        self.alarms.start()
        self.tracker.start()
        if mqtt and self.mqtt is None:
            if self.settings.mqtt_username and self.settings.broker_auth != "none":
                self.broker_auth.ensure_service_account(
                    self.settings.mqtt_username, self.settings.mqtt_password
                )
            self.mqtt = MqttIngest(mqtt_config(self.settings, worker_id), self.pipeline)
            self.mqtt.on_ack = lambda topic, payload: settle_ack(self.sessions, topic, payload)
            self.mqtt.start()
        if mqtt and self.settings.sparkplug_ingest and self.sparkplug is None:
            self.sparkplug = SparkplugIngest(
                sparkplug_config(self.settings, worker_id),
                self.pipeline,
                self.sparkplug_directory,
                self.directory,
                SqlDeadLetterSink(self.sessions),
                self.metrics,
            )
            # The MQTT ingest already waited for an unreachable broker; both retry in the background.
            self.sparkplug.start(timeout=10.0 if self.mqtt and self.mqtt.connected else 0.0)

    def command_transport(self) -> MqttIngest | None:
        """What commands to devices are published through (the ingest's MQTT client)."""
        return self.mqtt

    def close(self) -> None:
        self._stopping.set()
        if self.mqtt is not None:
            self.mqtt.stop()
            self.mqtt = None
        if self.sparkplug is not None:
            self.sparkplug.stop()
            self.sparkplug = None
        self.pipeline.stop()
        self.alarms.stop()
        self.tracker.stop()
        self.broker_auth.close()
        self.store.close()
        self.engine.dispose()
