"""Discovery: walk a server's Objects folder and list its variables, then draft a profile.

The walk goes level by level with one Browse request per level (and one Read request per batch
of attributes), so a server with a few thousand variables answers in a few round trips rather
than one per node. Properties (``HasProperty`` references: ``EngineeringUnits``, ``EURange``)
describe their variable and are not listed as variables themselves. Standard nodes (namespace 0,
such as the Server object) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from clusterbrain.connectors.opcua._session import close_client, open_client
from clusterbrain.connectors.opcua.client import OpcUaConnectError, describe_error
from clusterbrain.connectors.opcua.config import DEFAULT_APPLICATION_URI, OpcUaSecurity
from clusterbrain.connectors.opcua.draft import (
    DiscoveredVariable,
    discovery_rows,
    draft_nodes,
    draft_profile,
)
from clusterbrain.connectors.opcua.quality import reading_value

__all__ = ["DiscoveredVariable", "DiscoveryReport", "discover", "discover_draft"]

_BATCH = 200
_CURRENT_WRITE = 0b10
"""AccessLevel bit 1 (Part 3, 8.57): the current value may be written."""
_ATTRIBUTES = (
    AttributeIds.Value,
    AttributeIds.DataType,
    AttributeIds.AccessLevel,
    AttributeIds.UserAccessLevel,
    AttributeIds.Description,
    AttributeIds.ValueRank,
)


@dataclass(frozen=True, slots=True)
class DiscoveryReport:
    """What ``discover_draft`` found, ready to print and to save as YAML."""

    variables: list[DiscoveredVariable]
    rows: list[tuple[str, ...]]
    profile: dict[str, Any]
    nodes: list[dict[str, Any]]


@dataclass(slots=True)
class _Found:
    node_id: ua.NodeId
    path: str
    properties: dict[str, ua.NodeId] = field(default_factory=dict)


def _standard(identifier: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(identifier))


def _browse_description(node_id: ua.NodeId) -> ua.BrowseDescription:
    description = ua.BrowseDescription()
    description.NodeId = node_id
    description.BrowseDirection = ua.BrowseDirection.Forward
    description.ReferenceTypeId = _standard(ObjectIds.HierarchicalReferences)
    description.IncludeSubtypes = True
    description.NodeClassMask = ua.UInt32(ua.NodeClass.Object | ua.NodeClass.Variable)
    description.ResultMask = ua.UInt32(ua.BrowseResultMask.All)
    return description


async def _browse(client: Client, node_ids: Sequence[ua.NodeId]) -> list[list[Any]]:
    """The forward hierarchical references of each node, following continuation points."""
    references: list[list[Any]] = []
    for start in range(0, len(node_ids), _BATCH):
        params = ua.BrowseParameters()
        params.NodesToBrowse = [_browse_description(n) for n in node_ids[start : start + _BATCH]]
        for result in await client.uaclient.browse(params):
            found = list(result.References)
            point = result.ContinuationPoint
            while point:
                more = ua.BrowseNextParameters()
                more.ReleaseContinuationPoints = False
                more.ContinuationPoints = [point]
                [next_result] = await client.uaclient.browse_next(more)
                found.extend(next_result.References)
                point = next_result.ContinuationPoint
            references.append(found)
    return references


async def _read(
    client: Client, items: Sequence[tuple[ua.NodeId, AttributeIds]]
) -> list[ua.DataValue]:
    """Attribute data values, in batches of one Read request each."""
    values: list[ua.DataValue] = []
    for start in range(0, len(items), _BATCH):
        params = ua.ReadParameters()
        params.NodesToRead = [
            ua.ReadValueId(NodeId=node_id, AttributeId=attribute)
            for node_id, attribute in items[start : start + _BATCH]
        ]
        values.extend(await client.uaclient.read(params))
    return values


def _plain(data_value: ua.DataValue) -> Any:
    """The value of a data value; None when it is bad or empty (an attribute the node lacks)."""
    if data_value.StatusCode is not None and not data_value.StatusCode.is_good():
        return None
    return data_value.Value.Value if data_value.Value is not None else None


async def _resolve_root(client: Client, root: str) -> tuple[ua.NodeId, str]:
    """The node at browse path ``root`` below Objects (``IMM1`` or ``Plant/Line2``)."""
    node_id = _standard(ObjectIds.ObjectsFolder)
    for name in root.strip("/").split("/"):
        [references] = await _browse(client, [node_id])
        match = next((r for r in references if r.BrowseName.Name == name), None)
        if match is None:
            raise OpcUaConnectError(f"no node {name!r} on the path {root!r}", kind="protocol")
        node_id = match.NodeId
    return node_id, root.strip("/")


async def _walk(client: Client, start: ua.NodeId, prefix: str, max_depth: int) -> list[_Found]:
    variables: dict[str, _Found] = {}
    level, seen = [(start, prefix)], {start.to_string()}
    for _ in range(max_depth):
        if not level:
            break
        results = await _browse(client, [node_id for node_id, _ in level])
        next_level = []
        for (parent_id, parent_path), references in zip(level, results, strict=True):
            for reference in references:
                target = ua.NodeId(reference.NodeId.Identifier, reference.NodeId.NamespaceIndex)
                key = target.to_string()
                if reference.ReferenceTypeId == _standard(ObjectIds.HasProperty):
                    parent = variables.get(parent_id.to_string())
                    if parent is not None:
                        parent.properties[reference.BrowseName.Name] = target
                    continue
                if target.NamespaceIndex == 0 or key in seen:
                    continue
                seen.add(key)
                path = f"{parent_path}/{reference.BrowseName.Name}".lstrip("/")
                if reference.NodeClass == ua.NodeClass.Variable:
                    variables[key] = _Found(target, path)
                next_level.append((target, path))
        level = next_level
    return list(variables.values())


def _type_name(data_type: Any, value_variant: ua.VariantType | None) -> str:
    """Built-in type of a variable: its DataType when built in, else its value's variant type."""
    if isinstance(data_type, ua.NodeId):
        identifier = data_type.Identifier
        # Data types ns=0;i=1..25 are the built-in types, numbered as variant types are.
        if data_type.NamespaceIndex == 0 and isinstance(identifier, int) and 1 <= identifier <= 25:
            return ua.VariantType(identifier).name
        if value_variant is None:
            return data_type.to_string()
    return value_variant.name if value_variant is not None else "Unknown"


def _unit(info: Any) -> str:
    return (info.DisplayName.Text or "") if isinstance(info, ua.EUInformation) else ""


def _text(text: Any) -> str:
    return (text.Text or "") if isinstance(text, ua.LocalizedText) else ""


def _bounds(eu_range: Any) -> tuple[float | None, float | None]:
    if isinstance(eu_range, ua.Range):
        return float(eu_range.Low), float(eu_range.High)
    return None, None


async def _properties(client: Client, found: list[_Found]) -> dict[tuple[str, str], Any]:
    """``EngineeringUnits`` and ``EURange`` values by (variable node id, property name)."""
    wanted = [
        (item, name)
        for item in found
        for name in ("EngineeringUnits", "EURange")
        if name in item.properties
    ]
    values = await _read(
        client, [(item.properties[name], AttributeIds.Value) for item, name in wanted]
    )
    return {
        (item.node_id.to_string(), name): _plain(value)
        for (item, name), value in zip(wanted, values, strict=True)
    }


async def _describe(client: Client, found: list[_Found]) -> list[DiscoveredVariable]:
    width = len(_ATTRIBUTES)
    attributes = await _read(client, [(f.node_id, a) for f in found for a in _ATTRIBUTES])
    properties = await _properties(client, found)
    out = []
    for index, item in enumerate(found):
        value_dv, *rest = attributes[index * width : (index + 1) * width]
        data_type, access, user_access, description, rank = map(_plain, rest)
        value = _plain(value_dv)
        variant = value_dv.Value.VariantType if value_dv.Value is not None else None
        key = item.node_id.to_string()
        supported, plain = reading_value(value)
        low, high = _bounds(properties.get((key, "EURange")))
        out.append(
            DiscoveredVariable(
                node_id=key,
                browse_path=item.path,
                data_type=_type_name(data_type, variant),
                value=plain if supported else None,
                writable=bool((access or 0) & (user_access or 0) & _CURRENT_WRITE),
                unit=_unit(properties.get((key, "EngineeringUnits"))),
                description=_text(description),
                min_value=low,
                max_value=high,
                array=(rank is not None and rank >= 1) or isinstance(value, list),
            )
        )
    return out


async def discover(
    url: str,
    *,
    security: OpcUaSecurity | None = None,
    username: str | None = None,
    password: str | None = None,
    application_uri: str = DEFAULT_APPLICATION_URI,
    root: str | None = None,
    max_depth: int = 8,
    timeout_s: float = 5.0,
) -> list[DiscoveredVariable]:
    """Every variable below the Objects folder (or below the object at browse path ``root``).

    Raises OpcUaConnectError (with ``kind``) when the server cannot be reached or refuses us.
    """
    try:
        client = await open_client(
            url,
            security=security,
            username=username,
            password=password,
            application_uri=application_uri,
            timeout_s=timeout_s,
        )
    except Exception as exc:
        kind, message = describe_error(exc, url)
        raise OpcUaConnectError(message, kind=kind) from exc
    try:
        if root:
            start, prefix = await _resolve_root(client, root)
        else:
            start, prefix = _standard(ObjectIds.ObjectsFolder), ""
        found = await _walk(client, start, prefix, max_depth)
        return await _describe(client, found)
    finally:
        await close_client(client, timeout_s)


async def discover_draft(
    url: str,
    *,
    name: str | None = None,
    root: str | None = None,
    security: OpcUaSecurity | None = None,
    username: str | None = None,
    password: str | None = None,
    max_depth: int = 8,
    timeout_s: float = 5.0,
) -> DiscoveryReport:
    """Discover, then draft: the rows to print, the draft profile and the gateway node list."""
    variables = await discover(
        url,
        security=security,
        username=username,
        password=password,
        root=root,
        max_depth=max_depth,
        timeout_s=timeout_s,
    )
    profile_name = name or (root.strip("/").replace("/", "_") if root else "opcua_device")
    return DiscoveryReport(
        variables=variables,
        rows=discovery_rows(variables),
        profile=draft_profile(variables, profile_name),
        nodes=draft_nodes(variables),
    )
