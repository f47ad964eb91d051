"""Tenant-scoped use cases of the hierarchy, users and tokens. Every function takes a Principal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, false, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from clusterbrain.platform import schemas
from clusterbrain.platform.db import utcnow
from clusterbrain.platform.errors import Conflict, Forbidden, NotFound, Unauthenticated
from clusterbrain.platform.models import (
    ApiToken,
    Cluster,
    Enterprise,
    Line,
    Machine,
    Role,
    Site,
    User,
)
from clusterbrain.platform.security import hash_password, hash_secret, new_secret, verify_password
from clusterbrain.platform.tenancy import (
    ADMIN_ROLES,
    CONFIGURE_ROLES,
    ENTERPRISE_ROLES,
    Principal,
)

Scoped = TypeVar("Scoped", Site, Line, Machine)
Row = TypeVar("Row")


# --- authentication ---------------------------------------------------------------------------


def principal_of(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        cluster_id=user.cluster_id,
        enterprise_id=user.enterprise_id,
    )


def authenticate_token(session: Session, token: str) -> Principal:
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_secret(token), ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        raise Unauthenticated("unknown or revoked API token")
    return principal_of(row[1])


def login(session: Session, username: str, password: str, token_name: str = "login") -> str:
    """Exchange a username and password for a new API token."""
    return _issue_token(session, check_password(session, username, password), token_name)[1]


def check_password(session: Session, username: str, password: str) -> User:
    """The user, if the password is theirs (the console's sign-in)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.password_hash or not verify_password(password, user.password_hash):
        raise Unauthenticated("wrong username or password")
    return user


def _issue_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    token = new_secret("cbt")
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_secret(token))
    session.add(row)
    session.flush()
    return row, token


# --- scoping helpers --------------------------------------------------------------------------


def _not_found(kind: str, ident: object) -> NotFound:
    return NotFound(f"{kind} {ident} not found")


class _Owned(Protocol):
    """A row that belongs to an enterprise."""

    @property
    def enterprise_id(self) -> int: ...


Owned = TypeVar("Owned", bound=_Owned)


def get_visible(
    session: Session,
    model: type[Owned],
    ident: object,
    principal: Principal,
    what: str,
    *,
    field: str | None = None,
) -> Owned:
    """Load one row of an enterprise; a foreign row is indistinguishable from a missing one."""
    obj = session.get(model, ident)
    if obj is None or not principal.can_see_enterprise_data(obj.enterprise_id):
        raise NotFound(f"{what} {ident} not found", field=field)
    return obj


def get_scoped(session: Session, model: type[Scoped], ident: int, principal: Principal) -> Scoped:
    """A site, line or machine of the caller's enterprise."""
    return get_visible(session, model, ident, principal, model.__tablename__.rstrip("s"))


def where_visible(
    query: Select[Row],
    enterprise_id: ColumnElement[Any] | InstrumentedAttribute[Any],
    principal: Principal,
) -> Select[Row]:
    """Restrict a query to rows of the caller's enterprise (DESIGN.md §3).

    Platform admins see every enterprise; roles outside an enterprise (the cluster operator,
    reviewers, ...) see no enterprise's own rows at all.
    """
    if principal.is_platform_admin:
        return query
    if principal.role not in ENTERPRISE_ROLES or principal.enterprise_id is None:
        return query.where(false())
    return query.where(enterprise_id == principal.enterprise_id)


def list_scoped(session: Session, model: type[Scoped], principal: Principal) -> Sequence[Scoped]:
    query = where_visible(select(model).order_by(model.id), model.enterprise_id, principal)
    return session.scalars(query).all()


def target_enterprise(principal: Principal, requested: int | None) -> int:
    """Where a new row goes: the caller's own enterprise, or the one a platform admin names."""
    if principal.is_platform_admin:
        if requested is None:
            raise Forbidden("platform admins must name enterprise_id")
        return requested
    own = principal.own_enterprise()
    if requested is not None and requested != own:
        raise _not_found("enterprise", requested)
    return own


def _apply_patch(obj: Any, patch: Any) -> None:
    for key, value in patch.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(obj, key, value)


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"{what} conflicts with an existing one") from exc


# --- clusters and enterprises -----------------------------------------------------------------


def list_clusters(session: Session, principal: Principal) -> Sequence[Cluster]:
    query = select(Cluster).order_by(Cluster.id)
    if not principal.is_platform_admin:
        query = query.where(Cluster.id == principal.cluster_id)
    return session.scalars(query).all()


def create_cluster(session: Session, principal: Principal, data: schemas.ClusterIn) -> Cluster:
    principal.require(frozenset({Role.PLATFORM_ADMIN}), "create clusters")
    cluster = Cluster(name=data.name, region=data.region)
    session.add(cluster)
    _flush(session, f"cluster {data.name!r}")
    return cluster


def _enterprise_visible(principal: Principal, enterprise: Enterprise) -> bool:
    if principal.is_platform_admin or principal.enterprise_id == enterprise.id:
        return True
    return principal.role is Role.CLUSTER_OPERATOR and principal.cluster_id == enterprise.cluster_id


def list_enterprises(session: Session, principal: Principal) -> list[Enterprise]:
    rows = session.scalars(select(Enterprise).order_by(Enterprise.id)).all()
    return [e for e in rows if _enterprise_visible(principal, e)]


def get_enterprise(session: Session, principal: Principal, ident: int) -> Enterprise:
    enterprise = session.get(Enterprise, ident)
    if enterprise is None or not _enterprise_visible(principal, enterprise):
        raise _not_found("enterprise", ident)
    return enterprise


def create_enterprise(
    session: Session, principal: Principal, data: schemas.EnterpriseIn
) -> Enterprise:
    principal.require(frozenset({Role.PLATFORM_ADMIN, Role.CLUSTER_OPERATOR}), "create enterprises")
    if not principal.is_platform_admin and data.cluster_id != principal.cluster_id:
        raise _not_found("cluster", data.cluster_id)
    if session.get(Cluster, data.cluster_id) is None:
        raise NotFound(f"cluster {data.cluster_id} not found", field="cluster_id")
    enterprise = Enterprise(cluster_id=data.cluster_id, name=data.name, industry=data.industry)
    session.add(enterprise)
    _flush(session, f"enterprise {data.name!r}")
    return enterprise


def update_enterprise(
    session: Session, principal: Principal, ident: int, patch: schemas.EnterprisePatch
) -> Enterprise:
    enterprise = get_enterprise(session, principal, ident)
    principal.require(ADMIN_ROLES | {Role.CLUSTER_OPERATOR}, "edit enterprises")
    _apply_patch(enterprise, patch)
    _flush(session, "enterprise")
    return enterprise


def delete_enterprise(session: Session, principal: Principal, ident: int) -> None:
    enterprise = get_enterprise(session, principal, ident)
    principal.require(frozenset({Role.PLATFORM_ADMIN}), "delete enterprises")
    session.delete(enterprise)


# --- sites, lines, machines -------------------------------------------------------------------


def create_site(session: Session, principal: Principal, data: schemas.SiteIn) -> Site:
    principal.require(CONFIGURE_ROLES, "create sites")
    enterprise_id = target_enterprise(principal, data.enterprise_id)
    if session.get(Enterprise, enterprise_id) is None:
        raise NotFound(f"enterprise {enterprise_id} not found", field="enterprise_id")
    site = Site(enterprise_id=enterprise_id, name=data.name, timezone=data.timezone)
    session.add(site)
    _flush(session, "site")
    return site


def create_line(session: Session, principal: Principal, data: schemas.LineIn) -> Line:
    principal.require(CONFIGURE_ROLES, "create lines")
    site = _parent(session, Site, data.site_id, principal, "site_id")
    line = Line(enterprise_id=site.enterprise_id, site_id=site.id, name=data.name)
    session.add(line)
    _flush(session, "line")
    return line


def create_machine(session: Session, principal: Principal, data: schemas.MachineIn) -> Machine:
    principal.require(CONFIGURE_ROLES, "create machines")
    line = _parent(session, Line, data.line_id, principal, "line_id")
    machine = Machine(
        enterprise_id=line.enterprise_id,
        line_id=line.id,
        name=data.name,
        kind=data.kind,
        vendor=data.vendor,
        model=data.model,
    )
    session.add(machine)
    _flush(session, "machine")
    return machine


def _parent(
    session: Session, model: type[Scoped], ident: int, principal: Principal, field: str
) -> Scoped:
    try:
        return get_scoped(session, model, ident, principal)
    except NotFound as exc:
        raise NotFound(exc.detail, field=field) from exc


def update_scoped(
    session: Session, model: type[Scoped], ident: int, principal: Principal, patch: Any
) -> Scoped:
    obj = get_scoped(session, model, ident, principal)
    principal.require(CONFIGURE_ROLES, f"edit {model.__tablename__}")
    if isinstance(obj, Machine) and patch.line_id is not None:
        line = _parent(session, Line, patch.line_id, principal, "line_id")
        if line.enterprise_id != obj.enterprise_id:
            raise NotFound(f"line {patch.line_id} not found", field="line_id")
    _apply_patch(obj, patch)
    _flush(session, model.__tablename__.rstrip("s"))
    return obj


def delete_scoped(session: Session, model: type[Scoped], ident: int, principal: Principal) -> None:
    obj = get_scoped(session, model, ident, principal)
    principal.require(CONFIGURE_ROLES, f"delete {model.__tablename__}")
    session.delete(obj)
    _flush(session, model.__tablename__.rstrip("s"))


# --- users and tokens -------------------------------------------------------------------------


def _user_visible(principal: Principal, user: User) -> bool:
    if principal.is_platform_admin or principal.user_id == user.id:
        return True
    return principal.role is Role.ENTERPRISE_ADMIN and user.enterprise_id == principal.enterprise_id


def list_users(session: Session, principal: Principal) -> list[User]:
    rows = session.scalars(select(User).order_by(User.id)).all()
    return [u for u in rows if _user_visible(principal, u)]


def get_user(session: Session, principal: Principal, ident: int) -> User:
    user = session.get(User, ident)
    if user is None or not _user_visible(principal, user):
        raise _not_found("user", ident)
    return user


def create_user(session: Session, principal: Principal, data: schemas.UserIn) -> User:
    principal.require(ADMIN_ROLES, "create users")
    enterprise_id, cluster_id = data.enterprise_id, data.cluster_id
    if not principal.is_platform_admin:
        if data.role not in ENTERPRISE_ROLES:
            raise Forbidden(f"an enterprise admin may not create {data.role.value} users")
        enterprise_id = target_enterprise(principal, data.enterprise_id)
        cluster_id = principal.cluster_id
    user = User(
        username=data.username,
        display_name=data.display_name,
        role=data.role,
        enterprise_id=enterprise_id,
        cluster_id=cluster_id,
        password_hash=hash_password(data.password) if data.password else "",
        language=data.language,
        timezone=data.timezone,
    )
    session.add(user)
    _flush(session, f"user {data.username!r}")
    return user


def delete_user(session: Session, principal: Principal, ident: int) -> None:
    user = get_user(session, principal, ident)
    principal.require(ADMIN_ROLES, "delete users")
    session.delete(user)


def create_token(
    session: Session, principal: Principal, user_id: int, name: str
) -> tuple[ApiToken, str]:
    user = get_user(session, principal, user_id)
    if principal.user_id != user.id:
        principal.require(ADMIN_ROLES, "issue tokens for other users")
    return _issue_token(session, user, name)


def list_tokens(session: Session, principal: Principal, user_id: int) -> Sequence[ApiToken]:
    user = get_user(session, principal, user_id)
    return session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).all()


def revoke_token(session: Session, principal: Principal, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise _not_found("token", token_id)
    user = session.get(User, token.user_id)
    if user is None or not _user_visible(principal, user):
        raise _not_found("token", token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def bootstrap_admin(session: Session, username: str, password: str = "") -> tuple[User, str]:
    """Create (or reuse) a platform admin and give it a fresh token; for first start and demo."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(
            username=username,
            role=Role.PLATFORM_ADMIN,
            password_hash=hash_password(password) if password else "",
        )
        session.add(user)
        session.flush()
    return user, _issue_token(session, user, "bootstrap")[1]
