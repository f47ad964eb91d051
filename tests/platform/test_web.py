"""The session of a request commits before the response is sent."""

from __future__ import annotations

from fastapi.testclient import TestClient

from clusterbrain.api.app import create_app
from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.models import User
from clusterbrain.platform.tenancy import Role
from clusterbrain.platform.web import SessionDep
from support.world import World


def test_a_failing_commit_is_an_error_response_not_a_success(
    runtime: Runtime, world: World
) -> None:
    app = create_app(runtime)

    @app.post("/test/duplicate-user", status_code=201)
    def duplicate(session: SessionDep) -> dict[str, str]:
        session.add(User(username="root", role=Role.VIEWER))  # "root" exists: fails at commit
        return {"created": "root"}

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/test/duplicate-user")
    assert response.status_code != 201
    assert response.status_code >= 400
