"""``GET /tasks?target_id=`` (the detail page's 任务 tab) and ``GET /tasks/{id}``: one rule
decides which tasks a caller reads, on both databases."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, World


def _convert(world: World, hid: str, fmt: str) -> str:
    r = world.admin.post(f"/host-images/{hid}/formats", {"format": fmt})
    assert r.status_code == 202, r.text
    return str(r.json()["task_id"])


def _delete(world: World, hid: str) -> str:
    r = world.admin.post(f"/host-images/{hid}/protection", {"protected": False})
    assert r.status_code == 200, r.text
    r = world.admin.delete(f"/host-images/{hid}")
    assert r.status_code == 202, r.text
    return str(r.json()["task_id"])


def _ids(api: Api, **params: Any) -> list[str]:
    """The listed tasks, but for the uploads that made the test's images (tasks too)."""
    r = api.get("/tasks", params=params)
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["items"] if t["kind"] != "upload"]


def test_tasks_of_one_target_newest_first(world: World) -> None:
    a = world.host_image("p0a", "tasks-a", disks=1)
    b = world.host_image("p0a", "tasks-b", disks=1)
    first = _convert(world, a["id"], "qcow2")
    other = _convert(world, b["id"], "qcow2")
    assert world.worker.drain() == 2
    second = _delete(world, a["id"])

    r = world.admin.get("/tasks", params={"target_id": a["id"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [t["id"] for t in body["items"]] == [second, first]
    assert (body["total"], body["limit"], body["offset"]) == (2, 50, 0)
    uploads = world.admin.get("/tasks", params={"target_id": a["sub_images"][0]["id"]})
    assert uploads.json()["total"] == 0  # composed sub-images were never uploaded
    newest, oldest = body["items"]
    assert newest["kind"] == "delete_host_image" and newest["status"] == "queued"
    assert oldest["kind"] == "convert" and oldest["status"] == "succeeded"
    assert oldest["progress"] == 100 and oldest["target_type"] == "host_image"
    assert newest == world.admin.get(f"/tasks/{second}").json()

    assert _ids(world.admin, target_id=b["id"]) == [other]
    assert _ids(world.admin, target_id="no-such-object") == []
    # paging
    assert _ids(world.admin, target_id=a["id"], limit=1) == [second]
    page2 = world.admin.get("/tasks", params={"target_id": a["id"], "limit": 1, "offset": 1})
    assert [t["id"] for t in page2.json()["items"]] == [first]
    assert page2.json()["total"] == 2
    # without a target: every visible task
    assert set(_ids(world.admin)) == {first, second, other}
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        assert world.admin.get("/tasks", params=bad).status_code == 422
    # the task of a deleted object stays readable, so its 任务 tab still explains it
    assert world.worker.drain() == 1
    assert world.admin.get(f"/host-images/{a['id']}").status_code == 404
    assert _ids(world.admin, target_id=a["id"]) == [second, first]


def test_list_shows_exactly_the_tasks_get_shows(world: World) -> None:
    """Visibility of the list is that of ``GET /tasks/{id}``: sysadmin all; the token's
    current project; the projects of administered domains. Sharing does not widen it."""
    p0a = world.host_image("p0a", "vis-p0a", disks=1)
    p1a = world.host_image("p1a", "vis-p1a", disks=1)
    # p0a's image shared with p0b: p0b sees the image, but not its tasks
    r = world.admin.post(
        f"/host-images/{p0a['id']}/share",
        {"scope": "project", "project_ids": [world.projects["p0b"]]},
    )
    assert r.status_code == 200, r.text
    tasks = {
        "p0a": [_convert(world, p0a["id"], "qcow2"), _delete(world, p0a["id"])],
        "p1a": [_convert(world, p1a["id"], "qcow2")],
    }
    target = {"p0a": p0a["id"], "p1a": p1a["id"]}
    observers = {
        "admin": world.admin,
        "mem-p0a": world.add_user("mem-p0a", "member", "p0a"),
        "view-p0a": world.add_user("view-p0a", "viewer", "p0a"),
        "mem-p0b": world.add_user("mem-p0b", "member", "p0b"),
        "da-default": world.add_user("da-default", "domainadmin", "Default"),
        "da-d1": world.add_user("da-d1", "domainadmin", "D1"),
        "mem-p1a": world.add_user("mem-p1a", "member", "p1a"),
        "mem-p2a": world.add_user("mem-p2a", "member", "p2a", "D2"),
    }
    expected = {
        "admin": {"p0a", "p1a"},
        "mem-p0a": {"p0a"},
        "view-p0a": {"p0a"},
        "mem-p0b": set(),
        "da-default": {"p0a"},
        "da-d1": {"p1a"},
        "mem-p1a": {"p1a"},
        "mem-p2a": set(),
    }
    for name, api in observers.items():
        readable = {
            tid
            for ids in tasks.values()
            for tid in ids
            if api.get(f"/tasks/{tid}").status_code == 200
        }
        assert readable == {tid for p in expected[name] for tid in tasks[p]}, name
        listed = set(_ids(api))
        assert listed == readable, name
        for project, hid in target.items():
            got = _ids(api, target_id=hid)
            want = list(reversed(tasks[project])) if project in expected[name] else []
            assert got == want, (name, project)
