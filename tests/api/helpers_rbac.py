"""Helpers for the RBAC matrix, visibility properties, query-count and log-paging tests.

The ``world`` fixture of ``tests/api/conftest.py`` is function-scoped and wipes the database
for every test. The tests here need many cases on one expensive setup (users, uploaded source
images), so ``module_world`` builds the same kind of world once per module on the session's
``database``: a real app, a real database, three-level permissions on.

Layout (fixed): domains Default, D1, D2; projects p0a, p0b (Default), p1a, p1b (D1),
p2a, p2b (D2), plus ``system`` in Default.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from hostimage.api.app import create_app
from hostimage.db.engine import session_scope
from hostimage.services.bootstrap import bootstrap
from hostimage.settings import load_settings
from tests.api.conftest import ADMIN_PASSWORD, PASSWORD, Api, World, make_worker, raw_disk
from tests.conftest import wipe

PROJECT_DOMAINS = {
    "p0a": "Default",
    "p0b": "Default",
    "p1a": "D1",
    "p1b": "D1",
    "p2a": "D2",
    "p2b": "D2",
}


@dataclass
class ModuleWorld:
    """A ``World`` plus the app behind it and a few uploaded source images to compose from."""

    world: World
    app: FastAPI
    sources: list[str] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def admin(self) -> Api:
        return self.world.admin

    @property
    def engine(self) -> Engine:
        engine: Engine = self.app.state.engine
        return engine

    def pid(self, project: str) -> str:
        return self.world.projects[project]

    def did(self, domain: str) -> str:
        return self.world.domains[domain]

    def unique(self, stem: str) -> str:
        return f"{stem}-{next(self._names)}"

    def add_user(self, name: str, role: str, target: str | None, domain: str) -> str:
        """Create user ``name`` in ``domain`` with one role; returns the user id."""
        r = self.admin.post(
            "/users", {"name": name, "domain_id": self.did(domain), "password": PASSWORD}
        )
        assert r.status_code == 201, r.text
        uid: str = r.json()["id"]
        self.world.users[name] = uid
        self.grant(uid, role, target)
        return uid

    def grant(self, user_id: str, role: str, target: str | None) -> str:
        """Give ``role`` at ``target`` (a project or domain name; None for sysadmin)."""
        body: dict[str, Any] = {"user_id": user_id, "role": role}
        if role == "sysadmin":
            body["scope"] = "system"
        elif role == "domainadmin":
            body |= {"scope": "domain", "domain_id": self.did(target or "")}
        else:
            body |= {"scope": "project", "project_id": self.pid(target or "")}
        r = self.admin.post("/role-assignments", body)
        assert r.status_code == 201, r.text
        rid: str = r.json()["id"]
        return rid

    def login(self, name: str, project: str, domain: str) -> Api:
        """A token for ``name`` whose current project is ``project``."""
        api = Api(self.world.client)
        r = api.post(
            "/auth/login",
            {
                "username": name,
                "password": PASSWORD,
                "domain": domain,
                "project_id": self.pid(project),
            },
        )
        assert r.status_code == 200, r.text
        api.token = r.json()["token"]
        api.me = r.json()
        assert api.me["project"]["id"] == self.pid(project), api.me
        return api

    def compose(
        self, project: str, *, disks: int = 2, name: str | None = None, **attrs: Any
    ) -> dict[str, Any]:
        """A new host image in ``project`` composed (by admin) from the uploaded sources."""
        assert disks <= len(self.sources)
        r = self.admin.post(
            "/host-images",
            {
                "name": name or self.unique("hi"),
                "image_ids": self.sources[:disks],
                "project_id": self.pid(project),
                **attrs,
            },
        )
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    def share(self, host_image_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Share as admin; asserts success."""
        r = self.admin.post(f"/host-images/{host_image_id}/share", body)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


@contextmanager
def module_world(
    database: tuple[str, Engine], data_dir: Path, sources: int = 2
) -> Iterator[ModuleWorld]:
    """Build the fixed world on a wiped database; yields it with the test client open."""
    url, engine = database
    wipe(engine)
    settings = load_settings(data_dir=data_dir, database_url=url, admin_password=ADMIN_PASSWORD)
    app = create_app(settings, engine=engine)
    with session_scope(app.state.session_factory) as s:
        bootstrap(s, ADMIN_PASSWORD)
    with TestClient(app) as client:
        world = World(client=client, worker=make_worker(app, engine), admin=Api(client))
        world.admin = world.login("admin")
        world.three_level(True)
        for d in world.admin.get("/domains").json()["items"]:
            world.domains[d["name"]] = d["id"]
        for p in world.admin.get("/projects").json()["items"]:
            world.projects[p["name"]] = p["id"]
        for name in ("D1", "D2"):
            r = world.admin.post("/domains", {"name": name})
            assert r.status_code == 201, r.text
            world.domains[name] = r.json()["id"]
        for pname, dname in PROJECT_DOMAINS.items():
            r = world.admin.post("/projects", {"name": pname, "domain_id": world.domains[dname]})
            assert r.status_code == 201, r.text
            world.projects[pname] = r.json()["id"]
        mw = ModuleWorld(world=world, app=app)
        mw.sources = [
            world.upload(world.admin, f"source-{i}", raw_disk(i, 64 * 1024), project="p0a")["id"]
            for i in range(sources)
        ]
        yield mw


class StatementCounter:
    """Counts SQL statements sent on an engine while active (``before_cursor_execute``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> StatementCounter:
        self.statements = []
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on_execute)

    @property
    def count(self) -> int:
        return len(self.statements)


def list_all(api: Api, scope: str, page: int = 7, **params: Any) -> tuple[int, list[str]]:
    """Every id ``GET /host-images?scope=`` answers, walking all pages of size ``page``.

    Returns ``(status, ids)``; a refused view gives its status and no ids.
    """
    ids: list[str] = []
    offset = 0
    while True:
        r = api.get(
            "/host-images", params={"scope": scope, "limit": page, "offset": offset, **params}
        )
        if r.status_code != 200:
            return r.status_code, []
        body = r.json()
        ids.extend(item["id"] for item in body["items"])
        offset += page
        if offset >= body["total"]:
            assert len(ids) == body["total"], (len(ids), body["total"])
            return 200, ids
