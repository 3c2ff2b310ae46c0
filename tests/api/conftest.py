"""The API under test: a real app on a real database, and a small world of tenants."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hostimage.api.app import create_app
from hostimage.db.engine import make_session_factory, session_scope
from hostimage.services.bootstrap import bootstrap
from hostimage.services.runtime import runtime_from_settings
from hostimage.settings import load_settings
from hostimage.tasks.worker import Worker
from tests.conftest import wipe

ADMIN_PASSWORD = "admin-pass-1"
PASSWORD = "user-pass-1"
MiB = 1024 * 1024


class Api:
    """A logged-in client: ``api.get(...)`` etc. go to ``/api/v1`` with the bearer token."""

    def __init__(self, client: TestClient, token: str | None = None) -> None:
        self.client = client
        self.token = token
        self.me: dict[str, Any] = {}

    def _h(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**h, **(extra or {})}

    def request(self, method: str, path: str, **kw: Any) -> Any:
        headers = self._h(kw.pop("headers", None))
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("PATCH", path, json=json, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


@dataclass
class World:
    """Tenants for tests. D0 = Default (projects p0a, p0b), D1 (p1a, p1b), D2 (p2a)."""

    client: TestClient
    worker: Worker
    admin: Api
    domains: dict[str, str] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    _apis: dict[tuple[str, str | None], Api] = field(default_factory=dict)

    def login(self, user: str, project: str | None = None, domain: str = "Default") -> Api:
        key = (user, project)
        if key not in self._apis:
            api = Api(self.client)
            body: dict[str, Any] = {"username": user, "password": PASSWORD, "domain": domain}
            if user == "admin":
                body["password"] = ADMIN_PASSWORD
            if project:
                body["project_id"] = self.projects[project]
            r = api.post("/auth/login", body)
            assert r.status_code == 200, r.text
            api.token = r.json()["token"]
            api.me = r.json()
            self._apis[key] = api
        return self._apis[key]

    def add_user(
        self, name: str, role: str, target: str | None = None, domain: str = "Default"
    ) -> Api:
        r = self.admin.post(
            "/users", {"name": name, "domain_id": self.domains[domain], "password": PASSWORD}
        )
        assert r.status_code == 201, r.text
        uid = r.json()["id"]
        self.users[name] = uid
        body: dict[str, Any] = {"user_id": uid, "role": role}
        if role == "sysadmin":
            body["scope"] = "system"
        elif role == "domainadmin":
            body |= {"scope": "domain", "domain_id": self.domains[target or domain]}
        else:
            body |= {"scope": "project", "project_id": self.projects[target or ""]}
        r = self.admin.post("/role-assignments", body)
        assert r.status_code == 201, r.text
        project = target if role in ("member", "viewer") else None
        return self.login(name, project, domain)

    def upload(
        self, api: Api, name: str, data: bytes, fmt: str = "raw", project: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "disk_format": fmt}
        if project:
            body["project_id"] = self.projects[project]
        r = api.post("/images", body)
        assert r.status_code == 201, r.text
        r = api.put(
            f"/images/{r.json()['id']}/data",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def host_image(
        self, project: str, name: str, disks: int = 2, api: Api | None = None, **attrs: Any
    ) -> dict[str, Any]:
        api = api or self.admin
        ids = [
            self.upload(api, f"{name}-src{i}", raw_disk(i), project=project)["id"]
            for i in range(disks)
        ]
        r = api.post(
            "/host-images",
            {"name": name, "image_ids": ids, "project_id": self.projects[project], **attrs},
        )
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    def three_level(self, on: bool = True) -> None:
        r = self.admin.patch("/settings", {"three_level_permissions": on})
        assert r.status_code == 200, r.text


def raw_disk(seed: int, size: int = MiB) -> bytes:
    """A small raw disk with a boot signature and recognisable content."""
    data = bytearray(size)
    data[510:512] = b"\x55\xaa"
    data[4096 : 4096 + 32] = bytes([seed % 256]) * 32
    return bytes(data)


def make_worker(app: Any, engine: Engine) -> Worker:
    """A real worker on the app's database and storage, run in-process by the tests."""
    rt = runtime_from_settings(app.state.settings, make_session_factory(engine), app.state.storage)
    return Worker(rt)


@pytest.fixture()
def app_env(
    database: tuple[str, Engine], data_dir: Path, backend: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Any, Engine]]:
    """The app on a wiped database: SQLite with local files, or PostgreSQL with S3 storage
    (the two deployments SPEC §7 names)."""
    url, engine = database
    wipe(engine)
    storage: dict[str, Any] = {}
    if backend == "postgres":
        s3 = request.getfixturevalue("s3_server")
        storage = {
            "storage_url": f"s3://{s3.bucket}/{s3.run_prefix}/app-{uuid.uuid4().hex[:10]}",
            "s3_endpoint": s3.endpoint,
            "s3_region": s3.region,
            "s3_access_key": s3.access_key,
            "s3_secret_key": s3.secret_key,
        }
    settings = load_settings(
        data_dir=data_dir, database_url=url, admin_password=ADMIN_PASSWORD, **storage
    )
    app = create_app(settings, engine=engine)
    with session_scope(app.state.session_factory) as s:
        bootstrap(s, ADMIN_PASSWORD)
    yield app, engine


@pytest.fixture()
def client(app_env: tuple[Any, Engine]) -> Iterator[TestClient]:
    app, _ = app_env
    with TestClient(app) as c:
        yield c


def _base_world(client: TestClient, app_env: tuple[Any, Engine]) -> World:
    app, engine = app_env
    worker = make_worker(app, engine)
    admin = Api(client)
    w = World(client=client, worker=worker, admin=admin)
    admin_api = w.login("admin")
    w.admin = admin_api
    for d in admin_api.get("/domains").json()["items"]:
        w.domains[d["name"]] = d["id"]
    for p in admin_api.get("/projects").json()["items"]:
        w.projects[p["name"]] = p["id"]
    return w


@pytest.fixture()
def flat_world(client: TestClient, app_env: tuple[Any, Engine]) -> World:
    """Three-level permissions off: one domain (Default) with projects p0a, p0b."""
    w = _base_world(client, app_env)
    for pname in ("p0a", "p0b"):
        r = w.admin.post("/projects", {"name": pname, "domain_id": w.domains["Default"]})
        assert r.status_code == 201, r.text
        w.projects[pname] = r.json()["id"]
    return w


@pytest.fixture()
def world(client: TestClient, app_env: tuple[Any, Engine]) -> World:
    """Three-level permissions on: Default (p0a, p0b), D1 (p1a, p1b), D2 (p2a)."""
    w = _base_world(client, app_env)
    w.three_level(True)
    admin_api = w.admin
    for name in ("D1", "D2"):
        w.domains[name] = admin_api.post("/domains", {"name": name}).json()["id"]
    for pname, dname in (
        ("p0a", "Default"),
        ("p0b", "Default"),
        ("p1a", "D1"),
        ("p1b", "D1"),
        ("p2a", "D2"),
    ):
        r = admin_api.post("/projects", {"name": pname, "domain_id": w.domains[dname]})
        assert r.status_code == 201, r.text
        w.projects[pname] = r.json()["id"]
    return w
