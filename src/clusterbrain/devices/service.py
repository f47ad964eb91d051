"""Tenant-scoped use cases of device profiles and devices: register, rotate, revoke, status."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from clusterbrain.devices import schemas
from clusterbrain.devices.broker_auth import BrokerAuth
from clusterbrain.devices.models import Device, DeviceProfile, ProfileTag
from clusterbrain.platform.db import utcnow
from clusterbrain.platform.errors import Conflict, InvalidInput, NotFound
from clusterbrain.platform.models import Machine
from clusterbrain.platform.security import hash_secret, new_secret
from clusterbrain.platform.service import get_visible, target_enterprise, where_visible
from clusterbrain.platform.tenancy import CONFIGURE_ROLES, Principal

ONLINE_WINDOW = timedelta(seconds=120)
Ref = TypeVar("Ref", DeviceProfile, Machine)


# --- profiles ---------------------------------------------------------------------------------


def create_profile(
    session: Session, principal: Principal, data: schemas.ProfileIn
) -> DeviceProfile:
    principal.require(CONFIGURE_ROLES, "create device profiles")
    enterprise_id = target_enterprise(principal, data.enterprise_id)
    _check_tags(data.tags)
    profile = DeviceProfile(
        enterprise_id=enterprise_id, name=data.name, description=data.description
    )
    profile.tags = [ProfileTag(**tag.model_dump()) for tag in data.tags]
    session.add(profile)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"profile {data.name!r} already exists", field="name") from exc
    return profile


def _check_tags(tags: Sequence[schemas.TagIn]) -> None:
    seen: set[str] = set()
    for index, tag in enumerate(tags):
        if tag.name in seen:
            raise InvalidInput(f"tag {tag.name!r} appears twice", field=f"tags[{index}].name")
        seen.add(tag.name)
        if (
            tag.min_value is not None
            and tag.max_value is not None
            and tag.min_value > tag.max_value
        ):
            raise InvalidInput("min_value is above max_value", field=f"tags[{index}].min_value")


def list_profiles(session: Session, principal: Principal) -> Sequence[DeviceProfile]:
    query = (
        select(DeviceProfile).options(selectinload(DeviceProfile.tags)).order_by(DeviceProfile.id)
    )
    return session.scalars(where_visible(query, DeviceProfile.enterprise_id, principal)).all()


def get_profile(session: Session, principal: Principal, ident: int) -> DeviceProfile:
    return get_visible(session, DeviceProfile, ident, principal, "device profile")


def update_profile(
    session: Session, principal: Principal, ident: int, patch: schemas.ProfilePatch
) -> DeviceProfile:
    """Rename, redescribe, or replace the tag list (values already stored are kept)."""
    profile = get_profile(session, principal, ident)
    principal.require(CONFIGURE_ROLES, "edit device profiles")
    if patch.tags is not None:
        _check_tags(patch.tags)
        profile.tags.clear()
        session.flush()
        profile.tags.extend(ProfileTag(**tag.model_dump()) for tag in patch.tags)
    if patch.name is not None:
        profile.name = patch.name
    if patch.description is not None:
        profile.description = patch.description
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"profile {patch.name!r} already exists", field="name") from exc
    return profile


def delete_profile(session: Session, principal: Principal, ident: int) -> None:
    profile = get_profile(session, principal, ident)
    principal.require(CONFIGURE_ROLES, "delete device profiles")
    in_use = session.scalar(select(Device.id).where(Device.profile_id == profile.id).limit(1))
    if in_use is not None:
        raise Conflict(f"device profile {ident} is used by device {in_use}")
    session.delete(profile)


# --- devices ----------------------------------------------------------------------------------


def new_device_id() -> str:
    return f"dev-{secrets.token_hex(5)}"


def register_device(
    session: Session, principal: Principal, data: schemas.DeviceIn, broker: BrokerAuth
) -> tuple[Device, str]:
    """Create a device and its one-time secret; the broker learns the secret now or never."""
    principal.require(CONFIGURE_ROLES, "register devices")
    profile = _scoped_ref(session, principal, DeviceProfile, data.profile_id, "profile_id")
    if data.machine_id is not None:
        machine = _scoped_ref(session, principal, Machine, data.machine_id, "machine_id")
        if machine.enterprise_id != profile.enterprise_id:
            raise NotFound(f"machine {data.machine_id} not found", field="machine_id")
    device_id = data.device_id or new_device_id()
    if session.get(Device, device_id) is not None:
        raise Conflict(f"device id {device_id!r} is taken", field="device_id")
    gateway_id = _gateway_of(session, principal, data.gateway_id, profile.enterprise_id, device_id)
    secret = new_secret("cbd")
    device = Device(
        id=device_id,
        enterprise_id=profile.enterprise_id,
        machine_id=data.machine_id,
        profile_id=profile.id,
        gateway_id=gateway_id,
        name=data.name,
        secret_hash=hash_secret(secret),
    )
    session.add(device)
    session.flush()
    broker.upsert_device(device_id, secret)
    return device, secret


def _gateway_of(
    session: Session, principal: Principal, gateway_id: str | None, enterprise_id: int, own: str
) -> str | None:
    """A gateway must be a device of the same enterprise, and not the device itself."""
    if not gateway_id:
        return None
    gateway = get_visible(session, Device, gateway_id, principal, "gateway", field="gateway_id")
    if gateway.enterprise_id != enterprise_id or gateway.id == own:
        raise NotFound(f"gateway {gateway_id!r} not found", field="gateway_id")
    return gateway.id


def _scoped_ref(
    session: Session, principal: Principal, model: type[Ref], ident: int, field: str
) -> Ref:
    return get_visible(session, model, ident, principal, field.removesuffix("_id"), field=field)


def list_devices(session: Session, principal: Principal) -> Sequence[Device]:
    query = select(Device).order_by(Device.id)
    return session.scalars(where_visible(query, Device.enterprise_id, principal)).all()


def get_device(session: Session, principal: Principal, device_id: str) -> Device:
    return get_visible(session, Device, device_id, principal, "device")


def update_device(
    session: Session, principal: Principal, device_id: str, patch: schemas.DevicePatch
) -> Device:
    device = get_device(session, principal, device_id)
    principal.require(CONFIGURE_ROLES, "edit devices")
    if patch.profile_id is not None:
        profile = _scoped_ref(session, principal, DeviceProfile, patch.profile_id, "profile_id")
        device.profile_id = profile.id
    if patch.machine_id is not None:
        machine = _scoped_ref(session, principal, Machine, patch.machine_id, "machine_id")
        device.machine_id = machine.id
    if patch.name is not None:
        device.name = patch.name
    if patch.gateway_id is not None:
        device.gateway_id = _gateway_of(
            session, principal, patch.gateway_id, device.enterprise_id, device.id
        )
    return device


def rotate_secret(
    session: Session, principal: Principal, device_id: str, broker: BrokerAuth
) -> tuple[Device, str]:
    """Issue a new secret; the old one stops working at once (also at the broker)."""
    device = get_device(session, principal, device_id)
    principal.require(CONFIGURE_ROLES, "rotate device secrets")
    secret = new_secret("cbd")
    device.secret_hash = hash_secret(secret)
    device.secret_rotated_at = utcnow()
    device.revoked_at = None
    session.flush()
    broker.upsert_device(device.id, secret)
    return device, secret


def revoke_device(
    session: Session, principal: Principal, device_id: str, broker: BrokerAuth
) -> Device:
    device = get_device(session, principal, device_id)
    principal.require(CONFIGURE_ROLES, "revoke devices")
    if device.revoked_at is None:
        device.revoked_at = utcnow()
    session.flush()
    broker.revoke_device(device.id)
    return device


def delete_device(
    session: Session, principal: Principal, device_id: str, broker: BrokerAuth
) -> None:
    device = get_device(session, principal, device_id)
    principal.require(CONFIGURE_ROLES, "delete devices")
    session.delete(device)
    session.flush()
    broker.revoke_device(device_id)


def is_online(
    last_seen_at: datetime | None, now: datetime, window: timedelta = ONLINE_WINDOW
) -> bool:
    """A device is online when it sent data within the window.

    >>> from datetime import UTC
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> is_online(now - timedelta(seconds=30), now), is_online(None, now)
    (True, False)
    """
    return last_seen_at is not None and now - last_seen_at <= window


def device_out(device: Device, now: datetime | None = None) -> schemas.DeviceOut:
    return schemas.DeviceOut(
        id=device.id,
        enterprise_id=device.enterprise_id,
        machine_id=device.machine_id,
        profile_id=device.profile_id,
        gateway_id=device.gateway_id,
        name=device.name,
        revoked=device.revoked_at is not None,
        online=device.revoked_at is None
        and device.offline_since is None  # a Sparkplug DEATH, until the next BIRTH
        and is_online(device.last_seen_at, now or utcnow()),
        last_seen_at=device.last_seen_at,
        secret_rotated_at=device.secret_rotated_at,
    )
