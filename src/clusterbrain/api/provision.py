"""Provisioning a simulated cluster (enterprises, sites, lines, machines, profiles, devices).

Used by ``clusterbrain demo`` and ``clusterbrain simulate``. Idempotent: running it again reuses the
hierarchy and gives every device a fresh secret (the old ones were never stored in clear).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.devices import schemas as device_schemas
from clusterbrain.devices import service as devices
from clusterbrain.devices.broker_auth import BrokerAuth
from clusterbrain.devices.directory import SqlDeviceDirectory
from clusterbrain.devices.models import Device, DeviceProfile
from clusterbrain.devices.spec import TagKind
from clusterbrain.platform import schemas, service
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import Cluster, Enterprise, Line, Machine, Role, Site, User
from clusterbrain.platform.service import principal_of
from clusterbrain.platform.tenancy import Principal
from clusterbrain.production.models import MachineSettings
from clusterbrain.production.models import SiteCalendar as SiteCalendarRow
from clusterbrain.sim.profiles import PROFILES, ProfileSpec

ENTERPRISE_NAMES = (
    "Guzhen Brightway Lighting",
    "Haizhou Lumen Electric",
    "Xiaolan Homeware Appliances",
    "Dongfeng Precision Hardware",
    "Nantou Kitchen & Bath",
    "Huangpu Die-Casting",
)
MACHINE_MIX = (
    "injection_moulding",
    "injection_moulding",
    "cnc",
    "injection_moulding",
    "cnc",
    "air_compressor",
    "injection_moulding",
    "cnc",
    "injection_moulding",
    "power_meter",
)
KIND_LABEL = {
    "injection_moulding": "IMM",
    "cnc": "CNC",
    "air_compressor": "AC",
    "power_meter": "PM",
}


class Provisioning(Protocol):
    """What provisioning uses: a Runtime, or a Registry where no telemetry store may be opened."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def directory(self) -> SqlDeviceDirectory: ...

    @property
    def broker_auth(self) -> BrokerAuth: ...


@dataclass(frozen=True, slots=True)
class ProvisionedDevice:
    device_id: str
    secret: str
    kind: str
    machine_name: str
    enterprise: str


DEMO_CALENDAR = {
    "timezone": "Asia/Shanghai",
    "pattern": {
        "shifts": [
            {
                "name": "day 白班",
                "start": "08:00",
                "end": "20:00",
                "breaks": [{"name": "lunch 午餐", "start": "12:00", "end": "13:00"}],
            },
            {
                "name": "night 夜班",
                "start": "20:00",
                "end": "08:00",
                "breaks": [{"name": "meal 夜宵", "start": "00:00", "end": "00:30"}],
            },
        ]
    },
}
COUNTER_TAGS = {  # kind → (good, scrap, energy) tags of the simulated profiles
    "injection_moulding": ("good_count", "scrap_count", "energy"),
    "cnc": ("part_count", "", ""),
    "air_compressor": ("", "", ""),
}


def provision_cluster(
    runtime: Provisioning,
    *,
    enterprises: int = 3,
    machines: int = 30,
    password: str = "demo",
    seed: int = 7,
) -> list[ProvisionedDevice]:
    """Create (or reuse) ``enterprises`` with ``machines`` in total, one device each."""
    result: list[ProvisionedDevice] = []
    per_enterprise = _split(machines, enterprises)
    with session_scope(runtime.sessions) as session:
        admin, _ = service.bootstrap_admin(session, "admin", password)
        root = principal_of(admin)
        cluster = _get_or_create_cluster(session, root)
        for index, count in enumerate(per_enterprise):
            name = ENTERPRISE_NAMES[index % len(ENTERPRISE_NAMES)] + (
                "" if index < 6 else f" {index}"
            )
            principal = _enterprise_admin(session, root, cluster.id, name, index, password)
            provisioned = _provision_machines(session, runtime, principal, name, count, index)
            _production_settings(session, principal, provisioned, seed)
            result.extend(provisioned)
    runtime.directory.invalidate()
    return result


def _split(total: int, parts: int) -> list[int]:
    """Spread ``total`` machines over ``parts`` enterprises as evenly as possible.

    >>> _split(30, 3), _split(7, 3)
    ([10, 10, 10], [3, 2, 2])
    """
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _get_or_create_cluster(session: Session, root: Principal) -> Cluster:
    cluster = session.scalar(select(Cluster).where(Cluster.name == "Zhongshan lighting cluster"))
    if cluster is None:
        cluster = service.create_cluster(
            session, root, schemas.ClusterIn(name="Zhongshan lighting cluster", region="Zhongshan")
        )
    return cluster


def _enterprise_admin(
    session: Session, root: Principal, cluster_id: int, name: str, index: int, password: str
) -> Principal:
    enterprise = session.scalar(select(Enterprise).where(Enterprise.name == name))
    if enterprise is None:
        enterprise = service.create_enterprise(
            session,
            root,
            schemas.EnterpriseIn(cluster_id=cluster_id, name=name, industry="lighting"),
        )
    username = f"manager{index + 1}"
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = service.create_user(
            session,
            root,
            schemas.UserIn(
                username=username,
                display_name=f"{name} manager",
                role=Role.ENTERPRISE_ADMIN,
                enterprise_id=enterprise.id,
                cluster_id=cluster_id,
                password=password,
            ),
        )
    return principal_of(user)


def _provision_machines(
    session: Session,
    runtime: Provisioning,
    principal: Principal,
    name: str,
    count: int,
    index: int,
) -> list[ProvisionedDevice]:
    line = _line_of(session, principal)
    profiles = {kind: _profile_of(session, principal, spec) for kind, spec in PROFILES.items()}
    provisioned = []
    for number in range(count):
        kind = MACHINE_MIX[number % len(MACHINE_MIX)]
        machine_name = f"{KIND_LABEL[kind]}-{number + 1:02d}"
        machine = session.scalar(
            select(Machine).where(Machine.line_id == line.id, Machine.name == machine_name)
        )
        if machine is None:
            machine = service.create_machine(
                session, principal, schemas.MachineIn(line_id=line.id, name=machine_name, kind=kind)
            )
        device_id = f"e{index + 1}-{machine_name.lower()}"
        if session.get(Device, device_id) is None:
            _, secret = devices.register_device(
                session,
                principal,
                device_schemas.DeviceIn(
                    profile_id=profiles[kind],
                    machine_id=machine.id,
                    device_id=device_id,
                    name=f"{machine_name} gateway",
                ),
                runtime.broker_auth,
            )
        else:
            _, secret = devices.rotate_secret(session, principal, device_id, runtime.broker_auth)
        provisioned.append(ProvisionedDevice(device_id, secret, kind, machine_name, name))
    return provisioned


def _production_settings(
    session: Session, principal: Principal, devices: list[ProvisionedDevice], seed: int
) -> None:
    """Ideal cycle times as the simulated machines were designed, and a two-shift calendar."""
    from clusterbrain.sim.runner import device_rng
    from clusterbrain.sim.signals import make_model

    enterprise_id = principal.own_enterprise()
    for device in devices:
        machine_id = session.scalar(select(Device.machine_id).where(Device.id == device.device_id))
        if machine_id is None or device.kind not in COUNTER_TAGS:
            continue
        if session.get(MachineSettings, machine_id) is not None:
            continue
        good, scrap, energy = COUNTER_TAGS[device.kind]
        model = make_model(device.kind, device_rng(seed, device.device_id))
        session.add(
            MachineSettings(
                machine_id=machine_id,
                enterprise_id=enterprise_id,
                device_id=device.device_id,
                state_rules={"state_tag": "state"},
                ideal_cycle_time_s=model.ideal_seconds_per_part,
                good_count_tag=good,
                scrap_count_tag=scrap,
                energy_tag=energy,
            )
        )
    site = session.scalar(select(Site).where(Site.enterprise_id == enterprise_id))
    if (
        site is not None
        and session.scalar(select(SiteCalendarRow.id).where(SiteCalendarRow.site_id == site.id))
        is None
    ):
        session.add(
            SiteCalendarRow(site_id=site.id, enterprise_id=enterprise_id, definition=DEMO_CALENDAR)
        )


def _line_of(session: Session, principal: Principal) -> Line:
    enterprise_id = principal.own_enterprise()
    line = session.scalar(select(Line).where(Line.enterprise_id == enterprise_id))
    if line is not None:
        return line
    site = session.scalar(select(Site).where(Site.enterprise_id == enterprise_id))
    if site is None:
        site = service.create_site(session, principal, schemas.SiteIn(name="Main plant 主厂区"))
    return service.create_line(
        session, principal, schemas.LineIn(site_id=site.id, name="Line 1 一线")
    )


def _profile_of(session: Session, principal: Principal, spec: ProfileSpec) -> int:
    existing = session.scalar(
        select(DeviceProfile.id).where(
            DeviceProfile.enterprise_id == principal.own_enterprise(),
            DeviceProfile.name == spec.name,
        )
    )
    if existing is not None:
        return existing
    profile = devices.create_profile(
        session,
        principal,
        device_schemas.ProfileIn(
            name=spec.name,
            description=spec.description,
            tags=[
                device_schemas.TagIn(
                    name=t.name,
                    unit=t.unit,
                    data_type=TagKind(t.data_type),
                    min_value=t.min_value,
                    max_value=t.max_value,
                    description_en=t.description_en,
                    description_zh=t.description_zh,
                )
                for t in spec.tags
            ],
        ),
    )
    return profile.id
