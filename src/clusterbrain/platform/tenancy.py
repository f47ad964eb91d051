"""Who is asking, and what they may see. Every scoped query goes through a Principal."""

from __future__ import annotations

from dataclasses import dataclass

from clusterbrain.platform.errors import Forbidden
from clusterbrain.platform.models import Role

ENTERPRISE_ROLES = frozenset({Role.ENTERPRISE_ADMIN, Role.ENGINEER, Role.OPERATOR, Role.VIEWER})
CONFIGURE_ROLES = frozenset({Role.PLATFORM_ADMIN, Role.ENTERPRISE_ADMIN, Role.ENGINEER})
ADMIN_ROLES = frozenset({Role.PLATFORM_ADMIN, Role.ENTERPRISE_ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a user acting with one role inside one tenant."""

    user_id: int
    username: str
    role: Role
    cluster_id: int | None
    enterprise_id: int | None

    @property
    def is_platform_admin(self) -> bool:
        return self.role is Role.PLATFORM_ADMIN

    def can_see_enterprise_data(self, enterprise_id: int) -> bool:
        """Operational data (sites, machines, devices, telemetry) of one enterprise.

        The cluster operator sees aggregates only (DESIGN.md §3), never an enterprise's own rows.
        """
        if self.is_platform_admin:
            return True
        return self.role in ENTERPRISE_ROLES and self.enterprise_id == enterprise_id

    def require(self, roles: frozenset[Role], action: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"role {self.role.value} may not {action}")

    def own_enterprise(self) -> int:
        """The enterprise a write lands in; platform admins must name one explicitly."""
        if self.enterprise_id is None:
            raise Forbidden(f"role {self.role.value} acts on no enterprise")
        return self.enterprise_id
