"""From discovered OPC UA variables to a draft device profile and gateway node list (pure).

Discovery finds what a server offers; an engineer still decides what to keep. The draft gives
every plain variable (number, boolean, string) a valid, unique tag name derived from its browse
path, its unit and range from the ``EngineeringUnits`` and ``EURange`` properties, and its
description, so editing it is quicker than writing one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clusterbrain.connectors.source import Value

TAG_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_TAG_LENGTH = 64
MAX_UNIT_LENGTH = 32
"""The device registry stores at most this many characters of a unit."""

_INT_TYPES = frozenset({"SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64"})
_FLOAT_TYPES = frozenset({"Float", "Double"})

DISCOVERY_COLUMNS = ("browse path", "node id", "type", "value", "unit", "access", "tag")
"""Headings of ``discovery_rows``."""


@dataclass(frozen=True, slots=True)
class DiscoveredVariable:
    """One variable found by browsing, as plain values."""

    node_id: str
    browse_path: str
    """Browse names from the Objects folder, joined by ``/``: ``IMM1/Production/GoodParts``."""
    data_type: str
    """Built-in type name (``Double``, ``UInt32``, ``Boolean``, ``String``...), else the node id
    of the data type."""
    value: Value | None
    writable: bool
    unit: str = ""
    description: str = ""
    min_value: float | None = None
    max_value: float | None = None
    """The ``EURange`` property, when the server gives one."""
    array: bool = False


def snake_case(text: str) -> str:
    """``text`` in lower snake case, only ASCII letters, digits and underscores.

    >>> snake_case("ActualTemperature"), snake_case("EURange"), snake_case("Zone1Temp")
    ('actual_temperature', 'eu_range', 'zone1_temp')
    >>> snake_case("Feed rate (mm/min)")
    'feed_rate_mm_min'
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", text)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def tag_name(relative_path: str) -> str:
    """A valid tag name (``[a-z][a-z0-9_]*``, at most 64 characters) for a browse path.

    >>> tag_name("InjectionUnit/TemperatureZones/Zone1/ActualTemperature")
    'injection_unit_temperature_zones_zone1_actual_temperature'
    >>> tag_name("1st/Stage"), tag_name("温度")
    ('t_1st_stage', 'tag')
    """
    name = "_".join(part for part in map(snake_case, relative_path.split("/")) if part)
    if not name:
        return "tag"
    if not name[0].isalpha():
        name = f"t_{name}"
    return name[:MAX_TAG_LENGTH].rstrip("_")


def common_prefix(paths: Sequence[str]) -> str:
    """The leading path segments every path shares, keeping at least the last segment of each.

    >>> common_prefix(["IMM1/Production/GoodParts", "IMM1/Energy/Power"])
    'IMM1/'
    >>> common_prefix(["IMM1/Energy/Power"])
    'IMM1/Energy/'
    >>> common_prefix(["IMM1/A", "CNC1/B"])
    ''
    """
    if not paths:
        return ""
    split = [path.split("/")[:-1] for path in paths]
    shared: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        shared.append(parts[0])
    return "".join(f"{part}/" for part in shared)


def profile_data_type(type_name: str) -> str | None:
    """The profile's data type of an OPC UA built-in type; None for what a tag cannot hold.

    >>> [profile_data_type(t) for t in ("Double", "UInt32", "Boolean", "String", "DateTime")]
    ['float', 'int', 'bool', 'string', None]
    """
    if type_name in _FLOAT_TYPES:
        return "float"
    if type_name in _INT_TYPES:
        return "int"
    if type_name == "Boolean":
        return "bool"
    if type_name == "String":
        return "string"
    return None


def skip_reason(variable: DiscoveredVariable) -> str | None:
    """Why a variable stays out of the draft, or None when it goes in."""
    if variable.array:
        return "array"
    if profile_data_type(variable.data_type) is None:
        return f"type {variable.data_type}"
    return None


def assign_tags(variables: Sequence[DiscoveredVariable]) -> dict[str, str]:
    """Unique tag names by node id for the variables that go into the draft.

    A name already taken gets ``_2``, ``_3``...: two paths can differ only in characters that
    snake case drops.
    """
    kept = [v for v in variables if skip_reason(v) is None]
    prefix = common_prefix([v.browse_path for v in kept])
    names: dict[str, str] = {}
    taken: set[str] = set()
    for variable in kept:
        base = tag_name(variable.browse_path.removeprefix(prefix))
        name, counter = base, 1
        while name in taken:
            counter += 1
            suffix = f"_{counter}"
            name = base[: MAX_TAG_LENGTH - len(suffix)] + suffix
        taken.add(name)
        names[variable.node_id] = name
    return names


def _range(variable: DiscoveredVariable, kind: str) -> dict[str, float]:
    if kind not in ("float", "int"):
        return {}
    bounds = {"min_value": variable.min_value, "max_value": variable.max_value}
    return {key: value for key, value in bounds.items() if value is not None}


def draft_profile(
    variables: Sequence[DiscoveredVariable], name: str, description: str = ""
) -> dict[str, Any]:
    """A draft device profile (the registry's profile shape, plus each tag's ``node_id``)."""
    names = assign_tags(variables)
    tags = []
    for variable in variables:
        if variable.node_id not in names:
            continue
        kind = profile_data_type(variable.data_type)
        assert kind is not None  # assign_tags kept only convertible types
        tags.append(
            {
                "name": names[variable.node_id],
                "unit": variable.unit[:MAX_UNIT_LENGTH],
                "data_type": kind,
                **_range(variable, kind),
                "description_en": variable.description,
                "node_id": variable.node_id,
            }
        )
    return {
        "name": name,
        "description": description or f"Draft from OPC UA discovery ({len(tags)} tags)",
        "tags": tags,
    }


def draft_nodes(
    variables: Sequence[DiscoveredVariable], sampling_interval_ms: float = 1000.0
) -> list[dict[str, Any]]:
    """The gateway's node list for the same tags; writable ones carry their range for commands."""
    names = assign_tags(variables)
    nodes: list[dict[str, Any]] = []
    for variable in variables:
        if variable.node_id not in names:
            continue
        node: dict[str, Any] = {
            "tag": names[variable.node_id],
            "node_id": variable.node_id,
            "sampling_interval_ms": sampling_interval_ms,
        }
        if variable.writable:
            kind = profile_data_type(variable.data_type) or ""
            node.update({"writable": True, **_range(variable, kind)})
        nodes.append(node)
    return nodes


def _shown(value: Value | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def discovery_rows(variables: Sequence[DiscoveredVariable]) -> list[tuple[str, ...]]:
    """One row per variable under ``DISCOVERY_COLUMNS``; the tag column says why one is left out."""
    names = assign_tags(variables)
    rows: list[tuple[str, ...]] = []
    for variable in variables:
        tag = names.get(variable.node_id) or f"(skipped: {skip_reason(variable)})"
        rows.append(
            (
                variable.browse_path,
                variable.node_id,
                variable.data_type + ("[]" if variable.array else ""),
                _shown(variable.value),
                variable.unit,
                "read/write" if variable.writable else "read",
                tag,
            )
        )
    return rows
