"""Health, login, whoami, problem+json basics."""

from __future__ import annotations

from tests.api.conftest import Api, World


def test_health_and_ready(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok"}
    assert world.client.get("/readyz").json() == {"status": "ready"}


def test_openapi_served(world: World) -> None:
    doc = world.client.get("/api/v1/openapi.json").json()
    assert "/api/v1/host-images/{host_image_id}/share" in doc["paths"]


def test_login_whoami_logout(world: World) -> None:
    api = world.login("admin")
    me = api.get("/auth/whoami").json()
    assert me["user"]["name"] == "admin"
    assert me["highest_view"] == "system"
    assert me["project"]["name"] == "system"
    assert api.post("/auth/logout").status_code == 204
    r = api.get("/auth/whoami")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "bad_token"


def test_bad_password_is_401_problem(world: World) -> None:
    r = Api(world.client).post("/auth/login", {"username": "admin", "password": "nope"})
    assert r.status_code == 401
    body = r.json()
    assert set(body) >= {"type", "title", "status", "detail", "code"}
    assert body["code"] == "bad_credentials"


def test_missing_token_is_401(world: World) -> None:
    assert Api(world.client).get("/host-images").status_code == 401


def test_a_missing_token_is_refused_before_the_parameters_are_checked(world: World) -> None:
    anonymous = Api(world.client)
    r = anonymous.get("/host-images", params={"limit": 0})
    assert r.status_code == 401 and r.json()["code"] == "not_authenticated"
    r = anonymous.post("/host-images", {"name": "", "image_ids": []})
    assert r.status_code == 401
    # a token that is sent is checked with the request's work, after the parameters
    unknown = Api(world.client, token="not-a-token")
    assert unknown.get("/host-images", params={"limit": 0}).status_code == 422
    r = unknown.get("/host-images")
    assert r.status_code == 401 and r.json()["code"] == "bad_token"


def test_validation_is_422_problem(world: World) -> None:
    r = world.admin.post("/host-images", {"name": "", "image_ids": []})
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
