"""A small two-enterprise world built through the service layer, for API and ingest tests."""

from __future__ import annotations

from dataclasses import dataclass

from clusterbrain.api.runtime import Runtime
from clusterbrain.devices import schemas as device_schemas
from clusterbrain.devices import service as devices
from clusterbrain.platform import schemas, service
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import Role
from clusterbrain.platform.service import principal_of

PROFILE_TAGS = [
    {"name": "temperature", "unit": "°C", "data_type": "float", "min_value": 0, "max_value": 300},
    {"name": "count", "unit": "pcs", "data_type": "int", "min_value": 0},
    {"name": "running", "data_type": "bool"},
    {"name": "state", "data_type": "string"},
    {
        "name": "setpoint",
        "unit": "°C",
        "data_type": "float",
        "min_value": 0,
        "max_value": 300,
        "writable": True,
    },
]


@dataclass
class Tenant:
    enterprise_id: int
    token: str
    user_id: int
    site_id: int
    line_id: int
    machine_id: int
    profile_id: int
    device_id: str
    device_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    cluster_id: int
    admin_token: str
    a: Tenant
    b: Tenant

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def seed_world(runtime: Runtime) -> World:
    with session_scope(runtime.sessions) as session:
        admin, admin_token = service.bootstrap_admin(session, "root")
        root = principal_of(admin)
        cluster = service.create_cluster(session, root, schemas.ClusterIn(name="Guzhen lighting"))
        cluster_id = cluster.id
    tenants = [_seed_tenant(runtime, admin_token, cluster_id, name) for name in ("a", "b")]
    return World(cluster_id, admin_token, tenants[0], tenants[1])


def _seed_tenant(runtime: Runtime, admin_token: str, cluster_id: int, name: str) -> Tenant:
    with session_scope(runtime.sessions) as session:
        root = service.authenticate_token(session, admin_token)
        enterprise = service.create_enterprise(
            session, root, schemas.EnterpriseIn(cluster_id=cluster_id, name=f"enterprise-{name}")
        )
        user = service.create_user(
            session,
            root,
            schemas.UserIn(
                username=f"admin-{name}",
                role=Role.ENTERPRISE_ADMIN,
                enterprise_id=enterprise.id,
                cluster_id=cluster_id,
                password="secret-pw",
            ),
        )
        principal = principal_of(user)
        _, token = service.create_token(session, principal, user.id, "tests")
        site = service.create_site(session, principal, schemas.SiteIn(name=f"site-{name}"))
        line = service.create_line(session, principal, schemas.LineIn(site_id=site.id, name="L1"))
        machine = service.create_machine(
            session, principal, schemas.MachineIn(line_id=line.id, name="IMM-1")
        )
        profile = devices.create_profile(
            session,
            principal,
            device_schemas.ProfileIn(
                name="sensor",
                tags=[device_schemas.TagIn.model_validate(t) for t in PROFILE_TAGS],
            ),
        )
        device, secret = devices.register_device(
            session,
            principal,
            device_schemas.DeviceIn(
                profile_id=profile.id, machine_id=machine.id, device_id=f"dev-{name}-1"
            ),
            runtime.broker_auth,
        )
        return Tenant(
            enterprise.id,
            token,
            user.id,
            site.id,
            line.id,
            machine.id,
            profile.id,
            device.id,
            secret,
        )
