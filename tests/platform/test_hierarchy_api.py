"""The hierarchy API on SQLite and PostgreSQL: CRUD, roles, problem responses naming fields."""

from __future__ import annotations

from fastapi.testclient import TestClient

from support.world import World


def test_enterprise_admin_builds_site_line_machine(client: TestClient, world: World) -> None:
    h = world.a.headers
    site = client.post("/api/v1/sites", json={"name": "Plant 2"}, headers=h)
    assert site.status_code == 201, site.text
    assert site.json()["enterprise_id"] == world.a.enterprise_id
    line = client.post(
        "/api/v1/lines", json={"site_id": site.json()["id"], "name": "L2"}, headers=h
    )
    assert line.status_code == 201
    machine = client.post(
        "/api/v1/machines",
        json={"line_id": line.json()["id"], "name": "CNC-7", "kind": "cnc"},
        headers=h,
    )
    assert machine.status_code == 201
    machine_id = machine.json()["id"]
    patched = client.patch(f"/api/v1/machines/{machine_id}", json={"name": "CNC-8"}, headers=h)
    assert patched.json()["name"] == "CNC-8"
    names = [m["name"] for m in client.get("/api/v1/machines", headers=h).json()]
    assert "CNC-8" in names and "IMM-1" in names
    assert client.delete(f"/api/v1/machines/{machine_id}", headers=h).status_code == 204
    assert client.get(f"/api/v1/machines/{machine_id}", headers=h).status_code == 404


def test_validation_problem_names_the_field(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/lines", json={"site_id": world.a.site_id, "name": ""}, headers=world.a.headers
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["field"] == "name"
    assert body["status"] == 422 and body["type"].endswith("invalid-input")


def test_foreign_parent_is_not_found_with_field(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/lines", json={"site_id": world.b.site_id, "name": "x"}, headers=world.a.headers
    )
    assert response.status_code == 404
    assert response.json()["field"] == "site_id"


def test_missing_and_bad_token(client: TestClient, world: World) -> None:
    assert client.get("/api/v1/sites").status_code == 401
    bad = client.get("/api/v1/sites", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert bad.json()["type"].endswith("unauthenticated")


def test_viewer_cannot_configure(client: TestClient, world: World) -> None:
    created = client.post(
        "/api/v1/users",
        json={"username": "viewer-a", "role": "viewer", "password": "pw123456"},
        headers=world.a.headers,
    )
    assert created.status_code == 201, created.text
    login = client.post("/api/v1/auth/login", json={"username": "viewer-a", "password": "pw123456"})
    assert login.status_code == 200
    viewer = {"Authorization": f"Bearer {login.json()['token']}"}
    assert client.get("/api/v1/machines", headers=viewer).status_code == 200
    denied = client.post("/api/v1/sites", json={"name": "x"}, headers=viewer)
    assert denied.status_code == 403


def test_enterprise_admin_cannot_create_platform_admin(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/users",
        json={"username": "evil", "role": "platform_admin", "password": "x"},
        headers=world.a.headers,
    )
    assert response.status_code == 403


def test_token_revocation(client: TestClient, world: World) -> None:
    issued = client.post(
        f"/api/v1/users/{world.a.user_id}/tokens", json={"name": "ci"}, headers=world.a.headers
    )
    assert issued.status_code == 201
    token = issued.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    listed = client.get(f"/api/v1/users/{world.a.user_id}/tokens", headers=world.a.headers).json()
    assert all("token" not in row for row in listed)
    revoked = client.post(f"/api/v1/tokens/{issued.json()['id']}/revoke", headers=world.a.headers)
    assert revoked.status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_duplicate_enterprise_is_conflict(client: TestClient, world: World) -> None:
    body = {"cluster_id": world.cluster_id, "name": "enterprise-a"}
    response = client.post("/api/v1/enterprises", json=body, headers=world.admin_headers)
    assert response.status_code == 409


def test_cluster_operator_sees_enterprises_not_their_machines(
    client: TestClient, world: World
) -> None:
    created = client.post(
        "/api/v1/users",
        json={
            "username": "bureau",
            "role": "cluster_operator",
            "cluster_id": world.cluster_id,
            "password": "pw-bureau",
        },
        headers=world.admin_headers,
    )
    assert created.status_code == 201
    token = client.post(
        "/api/v1/auth/login", json={"username": "bureau", "password": "pw-bureau"}
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert len(client.get("/api/v1/enterprises", headers=headers).json()) == 2
    assert client.get("/api/v1/machines", headers=headers).json() == []
    assert client.get(f"/api/v1/machines/{world.a.machine_id}", headers=headers).status_code == 404


def test_problem_titles_follow_accept_language(client: TestClient, world: World) -> None:
    url = "/api/v1/machines/999999"
    chinese = client.get(url, headers={**world.a.headers, "Accept-Language": "zh-CN,zh;q=0.9"})
    english = client.get(url, headers={**world.a.headers, "Accept-Language": "en-US,en;q=0.8"})
    assert chinese.json()["title"] == "未找到" and chinese.headers["content-language"] == "zh-CN"
    assert english.json()["title"] == "Not found"
    assert client.get(url, headers=world.a.headers).json()["title"] == "未找到"  # default zh-CN


def test_users_set_their_own_language_and_time_zone(client: TestClient, world: World) -> None:
    changed = client.patch(
        "/api/v1/me",
        json={"language": "en", "timezone": "Asia/Ho_Chi_Minh"},
        headers=world.a.headers,
    )
    assert changed.status_code == 200, changed.text
    me = client.get("/api/v1/me", headers=world.a.headers).json()
    assert (me["language"], me["timezone"]) == ("en", "Asia/Ho_Chi_Minh")
    for body, field in (
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"language": "fr"}, "language"),
    ):
        refused = client.patch("/api/v1/me", json=body, headers=world.a.headers)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == field, refused.json()
    site = client.post(
        "/api/v1/sites", json={"name": "Plant 2", "timezone": "Guzhen"}, headers=world.a.headers
    )
    assert site.status_code == 422 and "unknown time zone" in site.text
    assert (
        client.get("/api/v1/me", headers=world.a.headers).json()["timezone"] == "Asia/Ho_Chi_Minh"
    )
