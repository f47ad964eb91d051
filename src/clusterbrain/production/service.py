"""Tenant-scoped use cases of production: downtime reasons and production orders."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clusterbrain.platform.errors import Conflict, NotFound
from clusterbrain.platform.models import Machine, Site
from clusterbrain.platform.service import get_scoped, get_visible, where_visible
from clusterbrain.platform.tenancy import CONFIGURE_ROLES, ENTERPRISE_ROLES, Principal
from clusterbrain.production import schemas
from clusterbrain.production.models import DowntimeReason, ProductionOrder, ReportSubscription
from clusterbrain.production.reasons import STANDARD_REASONS


def _enterprise_of(principal: Principal) -> int | None:
    if principal.role not in ENTERPRISE_ROLES:
        return None
    return principal.enterprise_id


# --- downtime reasons -------------------------------------------------------------------------


def ensure_standard_reasons(session: Session, enterprise_id: int) -> None:
    """Give an enterprise the standard tree the first time it needs one."""
    exists = session.scalar(
        select(DowntimeReason.id).where(DowntimeReason.enterprise_id == enterprise_id).limit(1)
    )
    if exists is not None:
        return
    ids: dict[str, int] = {}
    for reason in STANDARD_REASONS:
        row = DowntimeReason(
            enterprise_id=enterprise_id,
            code=reason.code,
            parent_id=ids.get(reason.parent) if reason.parent else None,
            name_en=reason.name_en,
            name_zh=reason.name_zh,
            category=reason.category,
        )
        session.add(row)
        session.flush()
        ids[reason.code] = row.id


def list_reasons(session: Session, principal: Principal) -> Sequence[DowntimeReason]:
    enterprise_id = _enterprise_of(principal)
    if enterprise_id is None:
        return []
    ensure_standard_reasons(session, enterprise_id)
    query = select(DowntimeReason).where(DowntimeReason.enterprise_id == enterprise_id)
    return session.scalars(query.order_by(DowntimeReason.code)).all()


def get_reason(session: Session, principal: Principal, ident: int) -> DowntimeReason:
    return get_visible(session, DowntimeReason, ident, principal, "downtime reason")


def create_reason(session: Session, principal: Principal, data: schemas.ReasonIn) -> DowntimeReason:
    principal.require(CONFIGURE_ROLES, "edit downtime reasons")
    enterprise_id = principal.own_enterprise()
    ensure_standard_reasons(session, enterprise_id)
    if data.parent_id is not None:
        parent = session.get(DowntimeReason, data.parent_id)
        if parent is None or parent.enterprise_id != enterprise_id:
            raise NotFound(f"downtime reason {data.parent_id} not found", field="parent_id")
    reason = DowntimeReason(enterprise_id=enterprise_id, **data.model_dump())
    session.add(reason)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"reason code {data.code!r} exists", field="code") from exc
    return reason


def update_reason(
    session: Session, principal: Principal, ident: int, patch: schemas.ReasonPatch
) -> DowntimeReason:
    reason = get_reason(session, principal, ident)
    principal.require(CONFIGURE_ROLES, "edit downtime reasons")
    for key, value in patch.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(reason, key, value)
    return reason


# --- production orders ------------------------------------------------------------------------


def create_order(session: Session, principal: Principal, data: schemas.OrderIn) -> ProductionOrder:
    principal.require(CONFIGURE_ROLES, "plan production orders")
    try:
        machine = get_scoped(session, Machine, data.machine_id, principal)
    except NotFound as exc:
        raise NotFound(exc.detail, field="machine_id") from exc
    order = ProductionOrder(enterprise_id=machine.enterprise_id, **data.model_dump())
    session.add(order)
    session.flush()
    return order


def list_orders(
    session: Session, principal: Principal, machine_id: int | None = None
) -> Sequence[ProductionOrder]:
    query = select(ProductionOrder).order_by(ProductionOrder.planned_start)
    query = where_visible(query, ProductionOrder.enterprise_id, principal)
    if machine_id is not None:
        query = query.where(ProductionOrder.machine_id == machine_id)
    return session.scalars(query).all()


def get_order(session: Session, principal: Principal, ident: int) -> ProductionOrder:
    return get_visible(session, ProductionOrder, ident, principal, "production order")


def delete_order(session: Session, principal: Principal, ident: int) -> None:
    order = get_order(session, principal, ident)
    principal.require(CONFIGURE_ROLES, "delete production orders")
    session.delete(order)


# --- report subscriptions ---------------------------------------------------------------------


def list_subscriptions(session: Session, principal: Principal) -> Sequence[ReportSubscription]:
    query = select(ReportSubscription).order_by(ReportSubscription.id)
    return session.scalars(where_visible(query, ReportSubscription.enterprise_id, principal)).all()


def create_subscription(
    session: Session, principal: Principal, data: schemas.SubscriptionIn
) -> ReportSubscription:
    principal.require(CONFIGURE_ROLES, "subscribe to reports")
    try:
        site = get_scoped(session, Site, data.site_id, principal)
    except NotFound as exc:
        raise NotFound(exc.detail, field="site_id") from exc
    row = ReportSubscription(enterprise_id=site.enterprise_id, **data.model_dump())
    session.add(row)
    session.flush()
    return row


def get_subscription(session: Session, principal: Principal, ident: int) -> ReportSubscription:
    return get_visible(session, ReportSubscription, ident, principal, "report subscription")


def delete_subscription(session: Session, principal: Principal, ident: int) -> None:
    row = get_subscription(session, principal, ident)
    principal.require(CONFIGURE_ROLES, "unsubscribe reports")
    session.delete(row)
