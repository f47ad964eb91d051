"""Routes of the tenancy hierarchy, users and tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from clusterbrain.platform import schemas, service
from clusterbrain.platform.models import Line, Machine, Site
from clusterbrain.platform.web import PrincipalDep, SessionDep

router = APIRouter(prefix="/api/v1")
NO_CONTENT = status.HTTP_204_NO_CONTENT


class LoginIn(BaseModel):
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class LoginOut(BaseModel):
    token: str
    token_type: str = "bearer"


@router.post("/auth/login", tags=["auth"], response_model=LoginOut)
def login(body: LoginIn, session: SessionDep) -> LoginOut:
    return LoginOut(token=service.login(session, body.username, body.password))


@router.get("/me", tags=["auth"], response_model=schemas.UserOut)
def me(session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_user(session, principal, principal.user_id)


@router.patch("/me", tags=["auth"], response_model=schemas.UserOut)
def update_me(body: schemas.MePatch, session: SessionDep, principal: PrincipalDep) -> object:
    """Change one's own display name, language (zh-CN or en) or time zone."""
    user = service.get_user(session, principal, principal.user_id)
    for key, value in body.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(user, key, value)
    return user


# --- clusters and enterprises -------------------------------------------------------------------


@router.get("/clusters", tags=["hierarchy"], response_model=list[schemas.ClusterOut])
def list_clusters(session: SessionDep, principal: PrincipalDep) -> object:
    return service.list_clusters(session, principal)


@router.post("/clusters", tags=["hierarchy"], response_model=schemas.ClusterOut, status_code=201)
def create_cluster(body: schemas.ClusterIn, session: SessionDep, principal: PrincipalDep) -> object:
    return service.create_cluster(session, principal, body)


@router.get("/enterprises", tags=["hierarchy"], response_model=list[schemas.EnterpriseOut])
def list_enterprises(session: SessionDep, principal: PrincipalDep) -> object:
    return service.list_enterprises(session, principal)


@router.post(
    "/enterprises", tags=["hierarchy"], response_model=schemas.EnterpriseOut, status_code=201
)
def create_enterprise(
    body: schemas.EnterpriseIn, session: SessionDep, principal: PrincipalDep
) -> object:
    return service.create_enterprise(session, principal, body)


@router.get(
    "/enterprises/{enterprise_id}", tags=["hierarchy"], response_model=schemas.EnterpriseOut
)
def get_enterprise(enterprise_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_enterprise(session, principal, enterprise_id)


@router.patch(
    "/enterprises/{enterprise_id}", tags=["hierarchy"], response_model=schemas.EnterpriseOut
)
def update_enterprise(
    enterprise_id: int,
    body: schemas.EnterprisePatch,
    session: SessionDep,
    principal: PrincipalDep,
) -> object:
    return service.update_enterprise(session, principal, enterprise_id, body)


@router.delete("/enterprises/{enterprise_id}", tags=["hierarchy"], status_code=NO_CONTENT)
def delete_enterprise(enterprise_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete_enterprise(session, principal, enterprise_id)
    return Response(status_code=NO_CONTENT)


# --- sites ------------------------------------------------------------------------------------


@router.get("/sites", tags=["hierarchy"], response_model=list[schemas.SiteOut])
def list_sites(session: SessionDep, principal: PrincipalDep) -> object:
    return service.list_scoped(session, Site, principal)


@router.post("/sites", tags=["hierarchy"], response_model=schemas.SiteOut, status_code=201)
def create_site(body: schemas.SiteIn, session: SessionDep, principal: PrincipalDep) -> object:
    return service.create_site(session, principal, body)


@router.get("/sites/{site_id}", tags=["hierarchy"], response_model=schemas.SiteOut)
def get_site(site_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_scoped(session, Site, site_id, principal)


@router.patch("/sites/{site_id}", tags=["hierarchy"], response_model=schemas.SiteOut)
def update_site(
    site_id: int, body: schemas.SitePatch, session: SessionDep, principal: PrincipalDep
) -> object:
    return service.update_scoped(session, Site, site_id, principal, body)


@router.delete("/sites/{site_id}", tags=["hierarchy"], status_code=NO_CONTENT)
def delete_site(site_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete_scoped(session, Site, site_id, principal)
    return Response(status_code=NO_CONTENT)


# --- lines ------------------------------------------------------------------------------------


@router.get("/lines", tags=["hierarchy"], response_model=list[schemas.LineOut])
def list_lines(session: SessionDep, principal: PrincipalDep) -> object:
    return service.list_scoped(session, Line, principal)


@router.post("/lines", tags=["hierarchy"], response_model=schemas.LineOut, status_code=201)
def create_line(body: schemas.LineIn, session: SessionDep, principal: PrincipalDep) -> object:
    return service.create_line(session, principal, body)


@router.get("/lines/{line_id}", tags=["hierarchy"], response_model=schemas.LineOut)
def get_line(line_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_scoped(session, Line, line_id, principal)


@router.patch("/lines/{line_id}", tags=["hierarchy"], response_model=schemas.LineOut)
def update_line(
    line_id: int, body: schemas.LinePatch, session: SessionDep, principal: PrincipalDep
) -> object:
    return service.update_scoped(session, Line, line_id, principal, body)


@router.delete("/lines/{line_id}", tags=["hierarchy"], status_code=NO_CONTENT)
def delete_line(line_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete_scoped(session, Line, line_id, principal)
    return Response(status_code=NO_CONTENT)


# --- machines ---------------------------------------------------------------------------------


@router.get("/machines", tags=["hierarchy"], response_model=list[schemas.MachineOut])
def list_machines(session: SessionDep, principal: PrincipalDep) -> object:
    return service.list_scoped(session, Machine, principal)


@router.post("/machines", tags=["hierarchy"], response_model=schemas.MachineOut, status_code=201)
def create_machine(body: schemas.MachineIn, session: SessionDep, principal: PrincipalDep) -> object:
    return service.create_machine(session, principal, body)


@router.get("/machines/{machine_id}", tags=["hierarchy"], response_model=schemas.MachineOut)
def get_machine(machine_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_scoped(session, Machine, machine_id, principal)


@router.patch("/machines/{machine_id}", tags=["hierarchy"], response_model=schemas.MachineOut)
def update_machine(
    machine_id: int, body: schemas.MachinePatch, session: SessionDep, principal: PrincipalDep
) -> object:
    return service.update_scoped(session, Machine, machine_id, principal, body)


@router.delete("/machines/{machine_id}", tags=["hierarchy"], status_code=NO_CONTENT)
def delete_machine(machine_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete_scoped(session, Machine, machine_id, principal)
    return Response(status_code=NO_CONTENT)


# --- users and tokens -------------------------------------------------------------------------


@router.get("/users", tags=["users"], response_model=list[schemas.UserOut])
def list_users(session: SessionDep, principal: PrincipalDep) -> object:
    return service.list_users(session, principal)


@router.post("/users", tags=["users"], response_model=schemas.UserOut, status_code=201)
def create_user(body: schemas.UserIn, session: SessionDep, principal: PrincipalDep) -> object:
    return service.create_user(session, principal, body)


@router.get("/users/{user_id}", tags=["users"], response_model=schemas.UserOut)
def get_user(user_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.get_user(session, principal, user_id)


@router.delete("/users/{user_id}", tags=["users"], status_code=NO_CONTENT)
def delete_user(user_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete_user(session, principal, user_id)
    return Response(status_code=NO_CONTENT)


@router.get("/users/{user_id}/tokens", tags=["users"], response_model=list[schemas.TokenOut])
def list_tokens(user_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.list_tokens(session, principal, user_id)


@router.post(
    "/users/{user_id}/tokens", tags=["users"], response_model=schemas.TokenCreated, status_code=201
)
def create_token(
    user_id: int, body: schemas.TokenIn, session: SessionDep, principal: PrincipalDep
) -> schemas.TokenCreated:
    row, token = service.create_token(session, principal, user_id, body.name)
    return schemas.TokenCreated(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        token=token,
    )


@router.post("/tokens/{token_id}/revoke", tags=["users"], response_model=schemas.TokenOut)
def revoke_token(token_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return service.revoke_token(session, principal, token_id)
