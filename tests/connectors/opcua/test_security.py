"""Basic256Sha256 secure channels with certificates, and user name login, on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clusterbrain.connectors.opcua.browse import discover
from clusterbrain.connectors.opcua.client import OpcUaConnectError, OpcUaSource
from clusterbrain.connectors.opcua.config import OpcUaConfig, OpcUaSecurity
from clusterbrain.sim.opcua_server import SERVER_CERTIFICATE, SimOpcUaServer, SimServerConfig

ZONE1 = "IMM1/InjectionUnit/TemperatureZones/Zone1/ActualTemperature"
USERS = {"operator": "s3cret"}


@pytest.fixture
def secure_server(sim_config: Callable[..., SimServerConfig], tmp_path: Path) -> SimServerConfig:
    return sim_config(secure_dir=tmp_path / "server-pki", users=USERS, allow_anonymous=False)


def _config(
    server: SimOpcUaServer, pki: tuple[Path, Path], mode: str = "SignAndEncrypt", **extra: Any
) -> OpcUaConfig:
    certificate, key = pki
    return OpcUaConfig.model_validate(
        {
            "name": "secure",
            "endpoint": server.endpoint,
            "security": {"mode": mode, "certificate": certificate, "private_key": key},
            "publishing_interval_ms": 100,
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.3,
            "nodes": [{"tag": "zone1", "node_id": server.node_id(ZONE1)}],
        }
        | extra
    )


@pytest.mark.parametrize("mode", ["SignAndEncrypt", "Sign"])
def test_secure_channel_with_user_and_password(
    secure_server: SimServerConfig,
    client_certificate: tuple[Path, Path],
    collector: Any,
    running: Any,
    mode: str,
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(secure_server) as server:
            assert secure_server.secure_dir is not None
            pinned = secure_server.secure_dir / SERVER_CERTIFICATE
            config = _config(
                server, client_certificate, mode, username="operator", password="s3cret"
            )
            if mode == "Sign":  # pin the server's certificate instead of taking the endpoint's
                security = OpcUaSecurity(
                    mode="Sign",
                    certificate=client_certificate[0],
                    private_key=client_certificate[1],
                    server_certificate=pinned,
                )
                config = config.model_copy(update={"security": security})
            source, out = OpcUaSource(config), collector()
            async with running(source, out):
                await out.wait_for(lambda c: len(c.readings) >= 1)
                await server.set_value(ZONE1, 222.0)
                await out.wait_for(lambda c: c.readings[-1].value == 222.0)
        assert source.counters.errors == 0 and source.counters.extra["auth_failures"] == 0

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_wrong_password_fails_clearly_and_is_counted(
    secure_server: SimServerConfig,
    client_certificate: tuple[Path, Path],
    collector: Any,
    running: Any,
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(secure_server) as server:
            config = _config(server, client_certificate, username="operator", password="guess")
            source, out = OpcUaSource(config), collector()
            async with running(source, out):
                while source.counters.extra["auth_failures"] < 2:
                    await asyncio.sleep(0.05)
            anonymous = OpcUaSource(_config(server, client_certificate))
            async with running(anonymous, out):
                while anonymous.counters.extra["auth_failures"] < 1:
                    await asyncio.sleep(0.05)
            with pytest.raises(OpcUaConnectError) as refused:
                await discover(
                    server.endpoint,
                    security=config.security,
                    username="operator",
                    password="guess",
                )
        assert out.readings == []
        counters = source.counters
        assert counters.connected is False and counters.reconnects == 0
        assert counters.errors >= counters.extra["auth_failures"] >= 2
        assert counters.last_error == (
            f"{server.endpoint} refused the login (BadUserAccessDenied): "
            "check username and password"
        )
        assert "BadIdentityTokenRejected" in anonymous.counters.last_error
        assert refused.value.kind == "auth" and "BadUserAccessDenied" in refused.value.detail

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_an_unreachable_server_is_counted_not_raised(
    sim_config: Callable[..., SimServerConfig], collector: Any, running: Any
) -> None:
    async def scenario() -> None:
        endpoint = sim_config().endpoint  # a free port nobody listens on
        config = OpcUaConfig.model_validate(
            {
                "name": "gone",
                "endpoint": endpoint,
                "reconnect_initial_s": 0.05,
                "reconnect_max_s": 0.1,
                "nodes": [{"tag": "x", "node_id": "ns=2;s=X"}],
            }
        )
        source, out = OpcUaSource(config), collector()
        async with running(source, out):
            while source.counters.errors < 3:
                await asyncio.sleep(0.05)
        assert "refused the connection" in source.counters.last_error
        with pytest.raises(OpcUaConnectError) as refused:
            await discover(endpoint, timeout_s=2.0)
        assert refused.value.kind == "unreachable"

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_security_is_required_not_negotiated_away(
    sim_config: Callable[..., SimServerConfig],
    client_certificate: tuple[Path, Path],
    collector: Any,
    running: Any,
) -> None:
    async def scenario() -> None:
        async with SimOpcUaServer(sim_config()) as server:  # offers no secure endpoint
            source, out = OpcUaSource(_config(server, client_certificate)), collector()
            async with running(source, out):
                while source.counters.errors < 1:
                    await asyncio.sleep(0.05)
        assert out.readings == [] and "No matching endpoints" in source.counters.last_error

    asyncio.run(asyncio.wait_for(scenario(), 60))
