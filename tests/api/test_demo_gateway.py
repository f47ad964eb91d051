"""The demo's edge gateway: registered in the first enterprise, publishing field data and its
health through the embedded broker with its own credentials, taking a setpoint, and stopping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clusterbrain.api.demo_gateway import FIELD_DEVICE_ID, GATEWAY_ID, start_demo_gateway
from clusterbrain.api.provision import provision_cluster
from clusterbrain.api.runtime import Runtime
from clusterbrain.connectors.gateway.runner import HEALTH_TAGS
from clusterbrain.connectors.mqtt.embedded_broker import EmbeddedBroker
from clusterbrain.devices import command_service, service
from clusterbrain.devices.command_service import CommandIn
from clusterbrain.devices.commands import CommandStatus
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.errors import InvalidInput
from clusterbrain.platform.models import User
from clusterbrain.platform.service import principal_of
from clusterbrain.platform.settings import Settings
from clusterbrain.platform.tenancy import Principal
from support.services import free_port


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Runtime]:
    """What ``clusterbrain demo`` sets up before its gateway: broker, cluster, ingest."""
    port = free_port()
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
        mqtt_host="127.0.0.1",
        mqtt_port=port,
        mqtt_protocol="3.1.1",
        mqtt_username="cb-ingest",
        mqtt_password="ingest-secret",
        mqtt_client_id=f"ingest-{tmp_path.name}",
    )
    runtime = Runtime(settings)
    broker = EmbeddedBroker(
        "127.0.0.1",
        port,
        lambda user, secret: runtime.directory.authenticate(user, secret) is not None,
        service_accounts={"cb-ingest": "ingest-secret"},
    ).start()
    provision_cluster(runtime, enterprises=2, machines=2)
    runtime.start_ingest(mqtt=True)
    try:
        yield runtime
    finally:
        runtime.close()
        broker.stop()


def _manager(runtime: Runtime, username: str) -> Principal:
    with session_scope(runtime.sessions) as session:
        user = session.query(User).filter_by(username=username).one()
        return principal_of(user)


def _wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_demo_gateway_publishes_takes_a_setpoint_and_stops(demo: Runtime) -> None:
    threads = set(threading.enumerate())
    stop = start_demo_gateway(demo, opcua=False)
    try:
        first, second = _manager(demo, "manager1"), _manager(demo, "manager2")
        with session_scope(demo.sessions) as session:
            field = service.get_device(session, first, FIELD_DEVICE_ID)
            assert field.gateway_id == GATEWAY_ID
            profile = service.get_profile(session, first, field.profile_id)
            writable = {t.name: (t.min_value, t.max_value) for t in profile.tags if t.writable}
            assert writable == {
                "pressure_setpoint": (5.0, 10.0),
                "remote_enable": (None, None),
                "running": (None, None),
            }
            gateway = service.get_device(session, first, GATEWAY_ID)
            gateway_tags = {
                t.name for t in service.get_profile(session, first, gateway.profile_id).tags
            }
            assert gateway_tags == set(HEALTH_TAGS)
            assert GATEWAY_ID not in {d.id for d in service.list_devices(session, second)}

        _wait(lambda: demo.store.latest(FIELD_DEVICE_ID, ["discharge_pressure"]), 30, "field data")
        _wait(lambda: demo.store.latest(GATEWAY_ID, ["reads"]), 30, "gateway health")

        with session_scope(demo.sessions) as session:
            command = command_service.create_command(
                session, first, FIELD_DEVICE_ID, CommandIn(tag="pressure_setpoint", value=6.5)
            )
            command_id = command.id
            with pytest.raises(InvalidInput) as refused:
                command_service.create_command(
                    session, first, FIELD_DEVICE_ID, CommandIn(tag="pressure_setpoint", value=25)
                )
            assert refused.value.field == "value"
        command_service.send(demo.sessions, demo.command_transport(), command_id)

        def settled() -> bool:
            with session_scope(demo.sessions) as session:
                status = command_service.get_command(session, first, command_id).status
            return status != CommandStatus.SENT

        _wait(settled, 30, "the acknowledgement")
        with session_scope(demo.sessions) as session:
            done = command_service.get_command(session, first, command_id)
            assert done.status == CommandStatus.SUCCEEDED, done.reason
    finally:
        stop()
    left = {t for t in threading.enumerate() if t not in threads and t.name != "ingest-mqtt"}
    assert not [t for t in left if t.name in ("demo-gateway", "modbus-sim")], left
