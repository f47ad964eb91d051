"""The gateway's configuration file (``gateway.yaml``), validated with errors that name the line.

Example::

    gateway:
      id: gw-hall-1                 # the gateway's own device id on the platform
      secret_env: CB_GATEWAY_SECRET # or secret: cbd_...
    uplink: {host: 10.0.0.5, port: 1883}
    spool: {path: /var/lib/clusterbrain/spool, max_mb: 256}
    metrics: {port: 9108}
    devices:
      - id: e1-meter-01             # the field device's id on the platform
        protocol: modbus
        modbus: {host: 192.168.1.20, port: 502, ...}
      - id: e1-imm-01
        protocol: opcua
        opcua: {endpoint: "opc.tcp://192.168.1.30:4840", ...}

Each protocol's own section is validated by that connector's config model (``PROTOCOLS``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clusterbrain.connectors.source import FieldSource

DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$"
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when PyYAML has it: a file of 10,000 tags loads in a fraction of the time and memory."""


class ConfigError(Exception):
    """The configuration is not usable; every problem names its line (and the key path)."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path, self.problems = path, list(problems)
        super().__init__(f"{path}: " + "; ".join(problems))

    def __str__(self) -> str:
        return "\n".join(f"{self.path}:{problem}" for problem in self.problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayIdentity(_Strict):
    id: str = Field(pattern=DEVICE_ID)
    secret: str = ""
    secret_env: str = ""
    """Name of an environment variable that holds the secret (keeps it out of the file)."""

    def resolved_secret(self) -> str:
        return os.environ.get(self.secret_env, "") if self.secret_env else self.secret


class UplinkConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    tls: bool = False
    ca_file: str = ""
    publish_interval_s: float = Field(default=0.2, gt=0, le=60)
    """How long readings are gathered into one message per device."""
    max_samples_per_message: int = Field(default=500, ge=1, le=10_000)
    max_inflight: int = Field(default=200, ge=1, le=10_000)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)


class SpoolConfig(_Strict):
    path: str = "var/gateway/spool"
    max_mb: float = Field(default=256.0, gt=0)
    """On overflow the oldest data is dropped and counted."""
    fsync: bool = False

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1024 * 1024)


class MetricsConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    """0 turns the /metrics endpoint off."""


class DeviceEntry(BaseModel):
    """One field device; its protocol's section is checked by the protocol's own model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(pattern=DEVICE_ID)
    protocol: str

    @field_validator("protocol")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PROTOCOLS:
            raise ValueError(f"unknown protocol {value!r}; one of {', '.join(sorted(PROTOCOLS))}")
        return value


class GatewayFile(_Strict):
    gateway: GatewayIdentity
    uplink: UplinkConfig = UplinkConfig()
    spool: SpoolConfig = SpoolConfig()
    metrics: MetricsConfig = MetricsConfig()
    health_interval_s: float = Field(default=10.0, gt=0)
    devices: list[DeviceEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Protocol:
    """How one protocol's section becomes settings, and settings a field source.

    ``parse`` gets the section, the device id and the config file's folder (for relative paths);
    it raises pydantic's ValidationError, or ValueError with a message naming the key.
    """

    parse: Callable[[dict[str, Any], str, Path], Any]
    build: Callable[[Any], FieldSource]


PROTOCOLS: dict[str, Protocol] = {}
"""Filled by :func:`register_protocol` (the built-in ones: ``connectors.gateway.protocols``)."""


def register_protocol(
    name: str, parse: Callable[[dict[str, Any], str, Path], Any], build: Callable[[Any], Any]
) -> None:
    PROTOCOLS[name] = Protocol(parse, build)


@dataclass(frozen=True, slots=True)
class FieldDevice:
    id: str
    protocol: str
    settings: Any


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    file: GatewayFile
    devices: tuple[FieldDevice, ...]
    base: Path
    """The config file's folder: relative paths (spool, certificates) are relative to it."""

    @property
    def gateway_id(self) -> str:
        return self.file.gateway.id

    def spool_path(self) -> Path:
        path = Path(self.file.spool.path)
        return path if path.is_absolute() else self.base / path


# --- loading --------------------------------------------------------------------------------------


def load_config(path: Path) -> GatewayConfig:
    """Read and validate a gateway file; ConfigError lists every problem with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"1: cannot read the file: {exc}"]) from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path = Path("gateway.yaml")) -> GatewayConfig:
    """Validate the text of a gateway file.

    >>> try:
    ...     parse_config("gateway: {id: gw-1}\\nuplink: {port: 0}\\n")
    ... except ConfigError as exc:
    ...     print(exc)
    gateway.yaml:2: uplink.port: Input should be greater than or equal to 1
    """
    try:
        document = yaml.load(text, Loader=_LOADER)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [f"{line}: not valid YAML: {problem}"]) from exc
    if not isinstance(document, dict):
        raise ConfigError(path, ["1: the file must hold a mapping with a 'gateway' section"])
    root = _Lines(text)
    try:
        file = GatewayFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(path, _located(exc, root)) from exc
    devices, problems = _field_devices(file, document, root, path.parent.resolve())
    ids = [d.id for d in file.devices]
    for index, device_id in enumerate(ids):
        if device_id in ids[:index]:
            line = root.line(("devices", index, "id"))
            problems.append(f"{line}: devices[{index}].id: {device_id!r} appears twice")
    if problems:
        raise ConfigError(path, problems)
    return GatewayConfig(file, tuple(devices), path.parent.resolve())


class _Lines:
    """Line numbers of key paths in the file, from its node tree, composed only when a problem
    needs one: the tree of a large file is several times the size of the file's data."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._root: yaml.Node | None = None
        self._composed = False

    def line(self, loc: Sequence[str | int]) -> int:
        if not self._composed:
            self._root = yaml.compose(self._text, Loader=_LOADER)
            self._composed = True
        return _line(self._root, loc)


def _field_devices(
    file: GatewayFile, document: Mapping[str, Any], root: _Lines, base: Path
) -> tuple[list[FieldDevice], list[str]]:
    devices, problems = [], []
    for index, entry in enumerate(file.devices):
        protocol = PROTOCOLS[entry.protocol]
        raw = document["devices"][index]
        extra = set(raw) - {"id", "protocol", entry.protocol}
        for key in sorted(extra):
            line = root.line(("devices", index, key))
            problems.append(f"{line}: devices[{index}].{key}: unknown key")
        section = raw.get(entry.protocol)
        if not isinstance(section, dict):
            line = root.line(("devices", index))
            problems.append(f"{line}: devices[{index}]: needs a '{entry.protocol}' section")
            continue
        where = ("devices", index, entry.protocol)
        try:
            settings = protocol.parse(section, entry.id, base)
        except ValidationError as exc:
            problems += _located(exc, root, where)
            continue
        except ValueError as exc:
            problems.append(f"{root.line(where)}: {dotted(where)}: {exc}")
            continue
        devices.append(FieldDevice(entry.id, entry.protocol, settings))
    return devices, problems


def _located(exc: ValidationError, root: _Lines, prefix: tuple[str | int, ...] = ()) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = prefix + tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{root.line(loc)}: {dotted(loc)}: {message}")
    return problems


def dotted(loc: Sequence[str | int]) -> str:
    """``("devices", 0, "modbus", "port")`` → ``devices[0].modbus.port``.

    >>> dotted(("devices", 0, "modbus", "tags", 3, "address"))
    'devices[0].modbus.tags[3].address'
    """
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line(root: yaml.Node | None, loc: Sequence[str | int]) -> int:
    """The 1-based line of the deepest node of ``loc`` that exists in the file."""
    node, line = root, 1
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        node = _child(node, part)
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                child: yaml.Node = value
                return child
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: yaml.Node = node.value[part]
        return item
    return None
