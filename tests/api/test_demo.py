"""``serve --demo`` seeds a populated catalogue that every demo user can log in to."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hostimage.db.engine import session_scope
from hostimage.services.demo import DEMO_PASSWORD, USERS, seed_demo
from tests.api.conftest import Api


def test_demo_seed_is_populated_and_idempotent(
    client: TestClient, app_env: tuple[Any, Engine]
) -> None:
    app, _ = app_env
    with session_scope(app.state.session_factory) as s:
        assert seed_demo(s, app.state.storage) is True
        assert seed_demo(s, app.state.storage) is False
    api = Api(client)
    for user in USERS:
        r = api.post(
            "/auth/login", {"username": user.name, "password": DEMO_PASSWORD, "domain": user.domain}
        )
        assert r.status_code == 200, (user, r.text)
    admin = Api(
        client,
        api.post("/auth/login", {"username": "admin", "password": "admin-pass-1"}).json()["token"],
    )
    listed = admin.get("/host-images", params={"scope": "system"}).json()
    assert listed["total"] >= 5
    assert {i["share_scope"] for i in listed["items"]} == {"none", "project", "domain", "system"}
    assert all(i["status"] == "active" for i in listed["items"])


def test_demo_seeds_vms_that_workers_build(client: TestClient, app_env: tuple[Any, Engine]) -> None:
    app, _ = app_env
    with session_scope(app.state.session_factory) as s:
        seed_demo(s, app.state.storage)
    admin = Api(
        client,
        Api(client)
        .post("/auth/login", {"username": "admin", "password": "admin-pass-1"})
        .json()["token"],
    )
    listed = admin.get("/servers", params={"scope": "system"}).json()
    assert listed["total"] == 3
    assert {s["status"] for s in listed["items"]} == {"creating"}
    db01 = next(s for s in listed["items"] if s["name"] == "db-01")
    assert db01["disk_driver"] == "scsi" and db01["net_driver"] == "virtio"
