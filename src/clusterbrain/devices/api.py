"""Routes of device profiles and devices: register, credentials once, rotate, revoke, status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from clusterbrain.devices import schemas, service
from clusterbrain.devices.broker_auth import BrokerAuth
from clusterbrain.devices.directory import SqlDeviceDirectory
from clusterbrain.devices.models import Device, DeviceProfile
from clusterbrain.platform.settings import Settings
from clusterbrain.platform.web import PrincipalDep, SessionDep

router = APIRouter(prefix="/api/v1")
NO_CONTENT = status.HTTP_204_NO_CONTENT


def get_broker_auth(request: Request) -> BrokerAuth:
    broker: BrokerAuth = request.app.state.broker_auth
    return broker


def get_directory(request: Request) -> SqlDeviceDirectory:
    directory: SqlDeviceDirectory = request.app.state.directory
    return directory


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


BrokerDep = Annotated[BrokerAuth, Depends(get_broker_auth)]
DirectoryDep = Annotated[SqlDeviceDirectory, Depends(get_directory)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def credentials_of(
    device: Device, secret: str, profile: DeviceProfile, settings: Settings
) -> schemas.DeviceCredentials:
    """Everything a technician needs to connect the device, with the secret shown this once."""
    sample_values: dict[str, object] = {}
    for tag in profile.tags[:3]:
        sample_values[tag.name] = _sample_value(tag.data_type, tag.min_value, tag.max_value)
    return schemas.DeviceCredentials(
        device=service.device_out(device),
        secret=secret,
        mqtt=schemas.MqttSettings(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=device.id,
            client_id=device.id,
            telemetry_topic=f"cb/v1/{device.id}/telemetry",
            commands_topic=f"cb/v1/{device.id}/commands",
        ),
        http_ingest_path=f"/api/v1/ingest/{device.id}/telemetry",
        sample_payload={
            "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "values": sample_values,
        },
    )


def _sample_value(data_type: str, low: float | None, high: float | None) -> object:
    if data_type == "string":
        return "running"
    if data_type == "bool":
        return True
    if low is not None and high is not None:
        middle = (low + high) / 2
        return round(middle) if data_type == "int" else middle
    return 0


# --- profiles ---------------------------------------------------------------------------------


@router.get("/device-profiles", tags=["devices"], response_model=list[schemas.ProfileOut])
def list_profiles(session: SessionDep, principal: PrincipalDep) -> object:
    return service.list_profiles(session, principal)


@router.post(
    "/device-profiles", tags=["devices"], response_model=schemas.ProfileOut, status_code=201
)
def create_profile(body: schemas.ProfileIn, session: SessionDep, principal: PrincipalDep) -> object:
    return service.create_profile(session, principal, body)


@router.get("/device-profiles/{profile_id}", tags=["devices"], response_model=schemas.ProfileOut)
def get_profile(profile_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_profile(session, principal, profile_id)


@router.patch("/device-profiles/{profile_id}", tags=["devices"], response_model=schemas.ProfileOut)
def update_profile(
    profile_id: int,
    body: schemas.ProfilePatch,
    session: SessionDep,
    principal: PrincipalDep,
    directory: DirectoryDep,
) -> object:
    profile = service.update_profile(session, principal, profile_id, body)
    directory.invalidate()
    return profile


@router.delete("/device-profiles/{profile_id}", tags=["devices"], status_code=NO_CONTENT)
def delete_profile(profile_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete_profile(session, principal, profile_id)
    return Response(status_code=NO_CONTENT)


# --- devices ----------------------------------------------------------------------------------


@router.get("/devices", tags=["devices"], response_model=list[schemas.DeviceOut])
def list_devices(session: SessionDep, principal: PrincipalDep) -> list[schemas.DeviceOut]:
    return [service.device_out(d) for d in service.list_devices(session, principal)]


@router.post(
    "/devices", tags=["devices"], response_model=schemas.DeviceCredentials, status_code=201
)
def register_device(
    body: schemas.DeviceIn,
    session: SessionDep,
    principal: PrincipalDep,
    broker: BrokerDep,
    directory: DirectoryDep,
    settings: SettingsDep,
) -> schemas.DeviceCredentials:
    device, secret = service.register_device(session, principal, body, broker)
    directory.invalidate(device.id)
    profile = service.get_profile(session, principal, device.profile_id)
    return credentials_of(device, secret, profile, settings)


@router.get("/devices/{device_id}", tags=["devices"], response_model=schemas.DeviceOut)
def get_device(device_id: str, session: SessionDep, principal: PrincipalDep) -> schemas.DeviceOut:
    return service.device_out(service.get_device(session, principal, device_id))


@router.patch("/devices/{device_id}", tags=["devices"], response_model=schemas.DeviceOut)
def update_device(
    device_id: str,
    body: schemas.DevicePatch,
    session: SessionDep,
    principal: PrincipalDep,
    directory: DirectoryDep,
) -> schemas.DeviceOut:
    device = service.update_device(session, principal, device_id, body)
    directory.invalidate(device_id)
    return service.device_out(device)


@router.post(
    "/devices/{device_id}/rotate-secret", tags=["devices"], response_model=schemas.DeviceCredentials
)
def rotate_secret(
    device_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    broker: BrokerDep,
    directory: DirectoryDep,
    settings: SettingsDep,
) -> schemas.DeviceCredentials:
    device, secret = service.rotate_secret(session, principal, device_id, broker)
    directory.invalidate(device_id)
    profile = service.get_profile(session, principal, device.profile_id)
    return credentials_of(device, secret, profile, settings)


@router.post("/devices/{device_id}/revoke", tags=["devices"], response_model=schemas.DeviceOut)
def revoke_device(
    device_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    broker: BrokerDep,
    directory: DirectoryDep,
) -> schemas.DeviceOut:
    device = service.revoke_device(session, principal, device_id, broker)
    directory.invalidate(device_id)
    return service.device_out(device)


@router.delete("/devices/{device_id}", tags=["devices"], status_code=NO_CONTENT)
def delete_device(
    device_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    broker: BrokerDep,
    directory: DirectoryDep,
) -> Response:
    service.delete_device(session, principal, device_id, broker)
    directory.invalidate(device_id)
    return Response(status_code=NO_CONTENT)
