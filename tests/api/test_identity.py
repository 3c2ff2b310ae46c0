"""Identity administration, token scoping, switch project, settings."""

from __future__ import annotations

from tests.api.conftest import Api, World


def test_domainadmin_manages_own_domain_only(world: World) -> None:
    da = world.add_user("d1admin", "domainadmin", "D1", domain="D1")
    r = da.post("/projects", {"name": "p1c", "domain_id": world.domains["D1"]})
    assert r.status_code == 201
    r = da.post("/projects", {"name": "px", "domain_id": world.domains["D2"]})
    assert r.status_code == 403
    assert da.post("/domains", {"name": "D9"}).status_code == 403
    names = {p["name"] for p in da.get("/projects").json()["items"]}
    assert names == {"p1a", "p1b", "p1c"}
    r = da.post("/users", {"name": "u1", "domain_id": world.domains["D1"], "password": "secret-1"})
    assert r.status_code == 201
    r = da.post(
        "/role-assignments", {"user_id": r.json()["id"], "role": "sysadmin", "scope": "system"}
    )
    assert r.status_code == 403


def test_token_current_project_and_switch(world: World) -> None:
    member = world.add_user("multi", "member", "p0a")
    world.admin.post(
        "/role-assignments",
        {
            "user_id": world.users["multi"],
            "role": "viewer",
            "scope": "project",
            "project_id": world.projects["p0b"],
        },
    )
    assert member.me["project"]["id"] == world.projects["p0a"]
    r = member.post("/auth/switch", {"project_id": world.projects["p0b"]})
    assert r.status_code == 200 and r.json()["project"]["id"] == world.projects["p0b"]
    switched = Api(world.client, r.json()["token"])
    assert switched.get("/auth/whoami").json()["project"]["name"] == "p0b"
    r = member.post("/auth/switch", {"project_id": world.projects["p1a"]})
    assert r.status_code == 403


def test_duplicate_names_are_409(world: World) -> None:
    r = world.admin.post("/projects", {"name": "p0a", "domain_id": world.domains["Default"]})
    assert r.status_code == 409
    r = world.admin.post("/domains", {"name": "D1"})
    assert r.status_code == 409


def test_role_scope_must_match(world: World) -> None:
    world.add_user("plain", "member", "p0a")
    r = world.admin.post(
        "/role-assignments",
        {
            "user_id": world.users["plain"],
            "role": "member",
            "scope": "domain",
            "domain_id": world.domains["D1"],
        },
    )
    assert r.status_code == 400


def test_revoked_role_removes_access(world: World) -> None:
    hi = world.host_image("p0a", "r", disks=1)
    m = world.add_user("gone", "member", "p0a")
    assert m.get(f"/host-images/{hi['id']}").status_code == 200
    ra = world.admin.get("/role-assignments", params={"user_id": world.users["gone"]}).json()
    assert world.admin.delete(f"/role-assignments/{ra['items'][0]['id']}").status_code == 204
    assert m.get(f"/host-images/{hi['id']}").status_code == 404


def test_settings(world: World) -> None:
    assert world.admin.get("/settings").json() == {
        "three_level_permissions": True,
        "target_formats": ["qcow2"],
        "max_virtual_size_gb": 16384,
        "max_upload_size_gb": 2048,
    }
    r = world.admin.patch("/settings", {"target_formats": ["qcow2", "vmdk"]})
    assert r.json()["target_formats"] == ["qcow2", "vmdk"]
    r = world.admin.patch("/settings", {"target_formats": ["floppy"]})
    assert r.status_code == 422
    m = world.add_user("nosettings", "member", "p0a")
    assert m.patch("/settings", {"target_formats": []}).status_code == 403


def test_duplicate_role_assignment_is_409(world: World) -> None:
    world.add_user("twice", "member", "p0a")
    body = {
        "user_id": world.users["twice"],
        "role": "member",
        "scope": "project",
        "project_id": world.projects["p0a"],
    }
    r = world.admin.post("/role-assignments", body)
    assert r.status_code == 409 and r.json()["code"] == "duplicate_assignment"
