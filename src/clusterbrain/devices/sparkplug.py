"""Sparkplug B devices: group claims, devices registered by their BIRTH, approval.

A Sparkplug group id is claimed by exactly one enterprise; the edge nodes publishing under it
belong to that enterprise. A node or device announcing itself with a BIRTH is registered as a
*pending* device with a draft profile made from the BIRTH's metrics; its data is stored only once
an engineer approved it.

The tenant-scoped use cases take a Principal like every other service. ``SparkplugDirectory`` is
the ingest's side: it acts for the platform (no principal) and is never reachable from the API.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from clusterbrain.devices.broker_auth import BrokerAuth, edge_node_username
from clusterbrain.devices.models import Device, DeviceProfile, ProfileTag, SparkplugGroup
from clusterbrain.platform.db import session_scope, utcnow
from clusterbrain.platform.errors import Conflict, InvalidInput, NotFound
from clusterbrain.platform.models import Enterprise, Machine
from clusterbrain.platform.security import hash_secret, new_secret
from clusterbrain.platform.service import get_visible, target_enterprise, where_visible
from clusterbrain.platform.tenancy import CONFIGURE_ROLES, Principal

ACTIVE: Final = "active"
PENDING: Final = "pending"
STATUSES: Final = (ACTIVE, PENDING)
GROUP_ID_PATTERN: Final = r"^[^/+#]{1,100}$"
"""Sparkplug 3.0: any UTF-8 text without the MQTT separators and wildcards."""
PROFILE_NAME_MAX: Final = 100


# --- group claims ---------------------------------------------------------------------------


def claim_group(
    session: Session, principal: Principal, group_id: str, enterprise_id: int | None = None
) -> SparkplugGroup:
    """Claim a group id for the caller's enterprise; a group belongs to one enterprise only.

    A group claimed by anyone (this enterprise included) is a conflict that does not say whose.
    """
    principal.require(CONFIGURE_ROLES, "claim Sparkplug groups")
    owner = target_enterprise(principal, enterprise_id)
    if session.get(Enterprise, owner) is None:
        raise NotFound(f"enterprise {owner} not found", field="enterprise_id")
    if session.get(SparkplugGroup, group_id) is not None:
        raise Conflict(f"Sparkplug group {group_id!r} is already claimed", field="group_id")
    claim = SparkplugGroup(group_id=group_id, enterprise_id=owner, created_by=principal.user_id)
    session.add(claim)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            f"Sparkplug group {group_id!r} is already claimed", field="group_id"
        ) from exc
    return claim


def list_groups(session: Session, principal: Principal) -> Sequence[SparkplugGroup]:
    query = select(SparkplugGroup).order_by(SparkplugGroup.group_id)
    return session.scalars(where_visible(query, SparkplugGroup.enterprise_id, principal)).all()


def release_group(session: Session, principal: Principal, group_id: str) -> None:
    """Give a group up: its messages become dead letters again; its devices and data stay."""
    claim = get_visible(session, SparkplugGroup, group_id, principal, "Sparkplug group")
    principal.require(CONFIGURE_ROLES, "release Sparkplug groups")
    session.delete(claim)
    session.flush()


# --- edge node credentials -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EdgeNodeCredentials:
    username: str
    password: str
    """Shown once; the platform keeps no copy, the broker only its hash."""


def issue_edge_node_credentials(
    session: Session, principal: Principal, group_id: str, edge_node_id: str, broker: BrokerAuth
) -> EdgeNodeCredentials:
    """Broker credentials for one edge node of a group the caller's enterprise claimed, allowed
    only that node's topics; issuing again sets a new password (the old one stops working)."""
    get_visible(session, SparkplugGroup, group_id, principal, "Sparkplug group")
    principal.require(CONFIGURE_ROLES, "issue Sparkplug edge node credentials")
    if not re.fullmatch(GROUP_ID_PATTERN, edge_node_id):
        raise InvalidInput("an edge node id has 1..100 characters, none of '/', '+', '#'",
                           field="edge_node_id")  # fmt: skip
    password = new_secret("cbs")
    broker.upsert_edge_node(group_id, edge_node_id, password)
    return EdgeNodeCredentials(edge_node_username(group_id, edge_node_id), password)


def revoke_edge_node_credentials(
    session: Session, principal: Principal, group_id: str, edge_node_id: str, broker: BrokerAuth
) -> None:
    get_visible(session, SparkplugGroup, group_id, principal, "Sparkplug group")
    principal.require(CONFIGURE_ROLES, "revoke Sparkplug edge node credentials")
    broker.revoke_edge_node(group_id, edge_node_id)


# --- devices ---------------------------------------------------------------------------------


def list_sparkplug_devices(
    session: Session, principal: Principal, status: str | None = None
) -> Sequence[Device]:
    query = select(Device).where(Device.sparkplug_key.is_not(None)).order_by(Device.id)
    if status is not None:
        query = query.where(Device.status == status)
    return session.scalars(where_visible(query, Device.enterprise_id, principal)).all()


def approve_device(
    session: Session,
    principal: Principal,
    device_id: str,
    *,
    machine_id: int | None = None,
    name: str | None = None,
) -> Device:
    """Make a pending device active, so that its data is stored; optionally bind it to a machine."""
    device = get_visible(session, Device, device_id, principal, "device")
    principal.require(CONFIGURE_ROLES, "approve devices")
    if machine_id is not None:
        machine = get_visible(
            session, Machine, machine_id, principal, "machine", field="machine_id"
        )
        if machine.enterprise_id != device.enterprise_id:
            raise NotFound(f"machine {machine_id} not found", field="machine_id")
        device.machine_id = machine.id
    if name is not None:
        device.name = name
    device.status = ACTIVE
    session.flush()
    return device


# --- the ingest's side ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DraftTag:
    """A tag of a draft profile, from one metric of a BIRTH."""

    name: str
    data_type: str
    metric: str
    """The Sparkplug metric name, kept in the tag's description."""


@dataclass(frozen=True, slots=True)
class SparkplugDevice:
    device_id: str
    status: str

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


def sparkplug_device_id(enterprise_id: int, key: str) -> str:
    """A device id (``^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$``) for a Sparkplug key, stable per tenant.

    >>> sparkplug_device_id(1, "plant1/gw-3/Press 7")
    'sp-plant1-gw-3-Press-7-b9dc5f5011'
    >>> sparkplug_device_id(1, "工厂/网关")
    'sp-99c42f7b07'
    """
    digest = hashlib.sha256(f"{enterprise_id}/{key}".encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")[:40].rstrip("-")
    return f"sp-{slug}-{digest}" if slug else f"sp-{digest}"


def draft_profile_name(key: str) -> str:
    """``Sparkplug <key>``, shortened with a hash to fit 100 characters.

    >>> draft_profile_name("plant1/gw-3/press-7")
    'Sparkplug plant1/gw-3/press-7'
    >>> len(draft_profile_name("g/" + "n" * 200))
    100
    """
    name = f"Sparkplug {key}"
    if len(name) <= PROFILE_NAME_MAX:
        return name
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{name[: PROFILE_NAME_MAX - 10]}… {digest}"


def register_birth(
    session: Session, enterprise_id: int, key: str, tags: Sequence[DraftTag]
) -> tuple[Device, bool]:
    """The device of a BIRTH, created pending with a draft profile if it is new.

    A known device is back online, and its profile gains the BIRTH's new metrics as long as the
    profile is its own (no other device uses it); an engineer's changes to existing tags stay.
    Returns the device and whether its profile changed.
    """
    device = session.scalar(
        select(Device).where(Device.enterprise_id == enterprise_id, Device.sparkplug_key == key)
    )
    if device is None:
        profile, changed = _draft_profile(session, enterprise_id, key, tags)
        device = Device(
            id=_free_device_id(session, enterprise_id, key),
            enterprise_id=enterprise_id,
            profile_id=profile.id,
            name=key[:200],
            # Nobody knows this secret: the device speaks Sparkplug, not cb/v1, until rotated.
            secret_hash=hash_secret(new_secret("cbd")),
            status=PENDING,
            sparkplug_key=key,
        )
        session.add(device)
        session.flush()
        return device, changed
    device.offline_since = None
    changed = False
    if _used_only_by(session, device.profile_id, device.id):
        own = session.get(DeviceProfile, device.profile_id)
        if own is not None:
            changed = _add_missing(own, tags)
    session.flush()
    return device, changed


def _draft_profile(
    session: Session, enterprise_id: int, key: str, tags: Sequence[DraftTag]
) -> tuple[DeviceProfile, bool]:
    """The profile named after the key: reused (e.g. after the device was deleted) or new."""
    name = draft_profile_name(key)
    profile = session.scalar(
        select(DeviceProfile)
        .options(selectinload(DeviceProfile.tags))
        .where(DeviceProfile.enterprise_id == enterprise_id, DeviceProfile.name == name)
    )
    if profile is None:
        profile = DeviceProfile(
            enterprise_id=enterprise_id,
            name=name,
            description=f"Draft from the Sparkplug BIRTH of {key}",
        )
        profile.tags = []
        session.add(profile)
    changed = _add_missing(profile, tags)
    session.flush()
    return profile, changed


def _add_missing(profile: DeviceProfile, tags: Sequence[DraftTag]) -> bool:
    have = {tag.name for tag in profile.tags}
    new = [tag for tag in tags if tag.name not in have]
    profile.tags.extend(
        ProfileTag(
            name=tag.name,
            data_type=tag.data_type,
            description_en=f"Sparkplug metric {tag.metric!r}",
            description_zh=f"Sparkplug 指标 {tag.metric!r}",
        )
        for tag in new
    )
    return bool(new)


def _used_only_by(session: Session, profile_id: int, device_id: str) -> bool:
    others = session.scalar(
        select(func.count())
        .select_from(Device)
        .where(Device.profile_id == profile_id, Device.id != device_id)
    )
    return not others


def _free_device_id(session: Session, enterprise_id: int, key: str) -> str:
    """The stable id, or (if a device registered by hand took it) one with a random part."""
    device_id = sparkplug_device_id(enterprise_id, key)
    if session.get(Device, device_id) is None:
        return device_id
    return sparkplug_device_id(enterprise_id, f"{key}/{new_secret('x', 6)}")


def mark_offline(session: Session, enterprise_id: int, keys: Iterable[str], at: datetime) -> int:
    """Take the devices of a DEATH offline; returns how many were known."""
    keys = list(keys)
    if not keys:
        return 0
    result = session.execute(
        update(Device)
        .where(Device.enterprise_id == enterprise_id, Device.sparkplug_key.in_(keys))
        .values(offline_since=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)


class SparkplugDirectory:
    """Which enterprise claimed a group and which device a key is, cached for ``ttl_s``.

    The API calls ``invalidate`` after a claim or an approval, so that one process sees the change
    at once; a separate ingest process sees it within the TTL.
    """

    def __init__(self, sessions: sessionmaker[Session], *, ttl_s: float = 2.0) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._groups: dict[str, tuple[float, int | None]] = {}
        self._devices: dict[tuple[int, str], tuple[float, SparkplugDevice | None]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._groups.clear()
            self._devices.clear()

    def enterprise_of(self, group_id: str) -> int | None:
        """The enterprise that claimed the group, or None."""
        now = time.monotonic()
        with self._lock:
            cached = self._groups.get(group_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        with session_scope(self._sessions) as session:
            claim = session.get(SparkplugGroup, group_id)
            enterprise_id = None if claim is None else claim.enterprise_id
        with self._lock:
            if len(self._groups) > 10_000:
                self._groups.clear()
            self._groups[group_id] = (now, enterprise_id)
        return enterprise_id

    def device_of(self, enterprise_id: int, key: str) -> SparkplugDevice | None:
        now = time.monotonic()
        with self._lock:
            cached = self._devices.get((enterprise_id, key))
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        with session_scope(self._sessions) as session:
            row = session.execute(
                select(Device.id, Device.status).where(
                    Device.enterprise_id == enterprise_id, Device.sparkplug_key == key
                )
            ).first()
        found = None if row is None else SparkplugDevice(row[0], row[1])
        self._remember(enterprise_id, key, found, now)
        return found

    def register(
        self, enterprise_id: int, key: str, tags: Sequence[DraftTag]
    ) -> tuple[SparkplugDevice, bool]:
        """Register (or find) the device of a BIRTH; see :func:`register_birth`."""
        try:
            with session_scope(self._sessions) as session:
                device, changed = register_birth(session, enterprise_id, key, tags)
                found = SparkplugDevice(device.id, device.status)
        except IntegrityError:  # registered by another process in the meantime
            with session_scope(self._sessions) as session:
                device, changed = register_birth(session, enterprise_id, key, tags)
                found = SparkplugDevice(device.id, device.status)
        self._remember(enterprise_id, key, found, time.monotonic())
        return found, changed

    def mark_offline(
        self, enterprise_id: int, keys: Iterable[str], at: datetime | None = None
    ) -> int:
        with session_scope(self._sessions) as session:
            return mark_offline(session, enterprise_id, keys, at or utcnow())

    def _remember(
        self, enterprise_id: int, key: str, device: SparkplugDevice | None, at: float
    ) -> None:
        with self._lock:
            if len(self._devices) > 100_000:
                self._devices.clear()
            self._devices[(enterprise_id, key)] = (at, device)
