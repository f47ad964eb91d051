"""Routes of production: downtime reasons and production orders."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from clusterbrain.platform.web import PrincipalDep, SessionDep
from clusterbrain.production import schemas, service

router = APIRouter(prefix="/api/v1")
NO_CONTENT = status.HTTP_204_NO_CONTENT


@router.get("/downtime-reasons", tags=["production"], response_model=list[schemas.ReasonOut])
def list_reasons(session: SessionDep, principal: PrincipalDep) -> object:
    """The enterprise's reason tree; the standard tree is created on first use."""
    return service.list_reasons(session, principal)


@router.post(
    "/downtime-reasons", tags=["production"], response_model=schemas.ReasonOut, status_code=201
)
def create_reason(body: schemas.ReasonIn, session: SessionDep, principal: PrincipalDep) -> object:
    return service.create_reason(session, principal, body)


@router.get("/downtime-reasons/{reason_id}", tags=["production"], response_model=schemas.ReasonOut)
def get_reason(reason_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_reason(session, principal, reason_id)


@router.patch(
    "/downtime-reasons/{reason_id}", tags=["production"], response_model=schemas.ReasonOut
)
def update_reason(
    reason_id: int, body: schemas.ReasonPatch, session: SessionDep, principal: PrincipalDep
) -> object:
    return service.update_reason(session, principal, reason_id, body)


@router.get("/production-orders", tags=["production"], response_model=list[schemas.OrderOut])
def list_orders(
    session: SessionDep, principal: PrincipalDep, machine_id: int | None = None
) -> object:
    return service.list_orders(session, principal, machine_id)


@router.post(
    "/production-orders", tags=["production"], response_model=schemas.OrderOut, status_code=201
)
def create_order(body: schemas.OrderIn, session: SessionDep, principal: PrincipalDep) -> object:
    return service.create_order(session, principal, body)


@router.get("/production-orders/{order_id}", tags=["production"], response_model=schemas.OrderOut)
def get_order(order_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_order(session, principal, order_id)


@router.delete("/production-orders/{order_id}", tags=["production"], status_code=NO_CONTENT)
def delete_order(order_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete_order(session, principal, order_id)
    return Response(status_code=NO_CONTENT)


@router.get(
    "/report-subscriptions", tags=["production"], response_model=list[schemas.SubscriptionOut]
)
def list_subscriptions(session: SessionDep, principal: PrincipalDep) -> object:
    return service.list_subscriptions(session, principal)


@router.post(
    "/report-subscriptions",
    tags=["production"],
    response_model=schemas.SubscriptionOut,
    status_code=201,
)
def create_subscription(
    body: schemas.SubscriptionIn, session: SessionDep, principal: PrincipalDep
) -> object:
    """E-mail a site's shift or day report (HTML with a PDF attached) after each period."""
    return service.create_subscription(session, principal, body)


@router.get(
    "/report-subscriptions/{subscription_id}",
    tags=["production"],
    response_model=schemas.SubscriptionOut,
)
def get_subscription(subscription_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_subscription(session, principal, subscription_id)


@router.delete(
    "/report-subscriptions/{subscription_id}", tags=["production"], status_code=NO_CONTENT
)
def delete_subscription(
    subscription_id: int, session: SessionDep, principal: PrincipalDep
) -> Response:
    service.delete_subscription(session, principal, subscription_id)
    return Response(status_code=NO_CONTENT)
