"""The field protocols a gateway file may name: how each section is read and its source built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clusterbrain.connectors.gateway.config import register_protocol
from clusterbrain.connectors.modbus.client import ModbusSource
from clusterbrain.connectors.modbus.registers import ModbusConnection, connection_from_dict
from clusterbrain.connectors.opcua.client import OpcUaSource
from clusterbrain.connectors.opcua.config import OpcUaConfig


def _modbus(section: dict[str, Any], device_id: str, _base: Path) -> ModbusConnection:
    return connection_from_dict({"name": device_id, **section})


def _opcua(section: dict[str, Any], device_id: str, base: Path) -> OpcUaConfig:
    data = {"name": device_id, **section}
    security = data.get("security")
    if isinstance(security, dict):  # certificate paths are relative to the gateway file
        data["security"] = {
            key: str(base / value) if key in _PATHS and value and not Path(value).is_absolute()
            else value
            for key, value in security.items()
        }  # fmt: skip
    return OpcUaConfig.model_validate(data)


_PATHS = ("certificate", "private_key", "server_certificate")


def register_builtin() -> None:
    """Make ``modbus`` and ``opcua`` known to the config loader (idempotent)."""
    register_protocol("modbus", _modbus, ModbusSource)
    register_protocol("opcua", _opcua, OpcUaSource)
