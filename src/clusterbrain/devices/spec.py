"""What the ingest pipeline needs to know of a device to validate its data, as plain values."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class TagKind(enum.StrEnum):
    """How a tag's value is checked and stored."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STRING = "string"


@dataclass(frozen=True, slots=True)
class TagRule:
    kind: TagKind
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    device_id: str
    enterprise_id: int
    active: bool
    tags: Mapping[str, TagRule] = field(default_factory=dict)
    gateway_id: str | None = None
    """Only this gateway may publish the device's data (``cb/v1/<gateway>/gateway/<id>/...``)."""
