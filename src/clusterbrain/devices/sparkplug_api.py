"""Routes of Sparkplug B: claim group ids, list devices registered by their BIRTH, approve them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from clusterbrain.devices import service, sparkplug
from clusterbrain.devices.api import BrokerDep
from clusterbrain.devices.models import Device
from clusterbrain.devices.sparkplug import GROUP_ID_PATTERN, SparkplugDirectory
from clusterbrain.platform.web import PrincipalDep, SessionDep

router = APIRouter(prefix="/api/v1")


class SparkplugGroupIn(BaseModel):
    group_id: str = Field(
        pattern=GROUP_ID_PATTERN, description="The Sparkplug group id (no '/', '+' or '#')."
    )
    enterprise_id: int | None = Field(default=None, description="Platform admins name it.")


class SparkplugGroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    group_id: str
    enterprise_id: int
    created_at: datetime


class SparkplugDeviceOut(BaseModel):
    id: str
    enterprise_id: int
    sparkplug_key: str
    status: str = Field(description="'pending' until approved, then 'active'.")
    profile_id: int
    machine_id: int | None
    name: str
    online: bool
    last_seen_at: datetime | None
    offline_since: datetime | None


class ApproveIn(BaseModel):
    machine_id: int | None = Field(default=None, description="Bind the device to this machine.")
    name: str | None = Field(default=None, max_length=200)


def _refresh_ingest_caches(
    request: Request, session: Session, device_id: str | None = None
) -> None:
    """Make the running ingest see a claim or an approval at once, not after its cache TTL.

    Committed first: the ingest must not reload the old state between invalidation and commit.
    """
    session.commit()
    directory = getattr(request.app.state.runtime, "sparkplug_directory", None)
    if isinstance(directory, SparkplugDirectory):
        directory.invalidate()
    if device_id is not None:
        request.app.state.directory.invalidate(device_id)


def device_out(device: Device) -> SparkplugDeviceOut:
    return SparkplugDeviceOut(
        id=device.id,
        enterprise_id=device.enterprise_id,
        sparkplug_key=device.sparkplug_key or "",
        status=device.status,
        profile_id=device.profile_id,
        machine_id=device.machine_id,
        name=device.name,
        online=service.device_out(device).online,
        last_seen_at=device.last_seen_at,
        offline_since=device.offline_since,
    )


@router.post(
    "/sparkplug/groups", tags=["sparkplug"], response_model=SparkplugGroupOut, status_code=201
)
def claim_group(
    body: SparkplugGroupIn, request: Request, session: SessionDep, principal: PrincipalDep
) -> object:
    """Claim a Sparkplug group id: its edge nodes' messages then belong to this enterprise."""
    claim = sparkplug.claim_group(session, principal, body.group_id, body.enterprise_id)
    _refresh_ingest_caches(request, session)
    return claim


@router.get("/sparkplug/groups", tags=["sparkplug"], response_model=list[SparkplugGroupOut])
def list_groups(session: SessionDep, principal: PrincipalDep) -> object:
    return sparkplug.list_groups(session, principal)


@router.delete("/sparkplug/groups/{group_id}", tags=["sparkplug"], status_code=204)
def release_group(
    group_id: str, request: Request, session: SessionDep, principal: PrincipalDep
) -> Response:
    sparkplug.release_group(session, principal, group_id)
    _refresh_ingest_caches(request, session)
    return Response(status_code=204)


class EdgeNodeCredentialsOut(BaseModel):
    username: str = Field(description="The edge node's broker login: spBv1.0/<group>/<node>.")
    password: str = Field(description="Shown once; issuing again replaces it.")


@router.post(
    "/sparkplug/groups/{group_id}/edge-nodes/{edge_node_id}/credentials",
    tags=["sparkplug"],
    response_model=EdgeNodeCredentialsOut,
    status_code=201,
)
def issue_edge_node_credentials(
    group_id: str,
    edge_node_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    broker: BrokerDep,
) -> EdgeNodeCredentialsOut:
    """Broker credentials for an edge node of a claimed group, allowed only its own topics (its
    node's and devices' messages, their commands, the host applications' STATE)."""
    issued = sparkplug.issue_edge_node_credentials(
        session, principal, group_id, edge_node_id, broker
    )
    return EdgeNodeCredentialsOut(username=issued.username, password=issued.password)


@router.delete(
    "/sparkplug/groups/{group_id}/edge-nodes/{edge_node_id}/credentials",
    tags=["sparkplug"],
    status_code=204,
)
def revoke_edge_node_credentials(
    group_id: str,
    edge_node_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    broker: BrokerDep,
) -> Response:
    """Remove the edge node's broker login; a connected node is disconnected."""
    sparkplug.revoke_edge_node_credentials(session, principal, group_id, edge_node_id, broker)
    return Response(status_code=204)


@router.get("/sparkplug/devices", tags=["sparkplug"], response_model=list[SparkplugDeviceOut])
def list_devices(
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[Literal["pending", "active"] | None, Query()] = None,
) -> list[SparkplugDeviceOut]:
    """Nodes and devices registered by their BIRTH; ``status=pending`` are those to approve."""
    return [device_out(d) for d in sparkplug.list_sparkplug_devices(session, principal, status)]


@router.post("/devices/{device_id}/approve", tags=["sparkplug"], response_model=SparkplugDeviceOut)
def approve_device(
    device_id: str,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    body: ApproveIn | None = None,
) -> SparkplugDeviceOut:
    """Approve a pending device: from now on its data is validated and stored."""
    body = body or ApproveIn()
    device = sparkplug.approve_device(
        session, principal, device_id, machine_id=body.machine_id, name=body.name
    )
    _refresh_ingest_caches(request, session, device.id)
    return device_out(device)
