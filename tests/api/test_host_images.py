"""Host-image features F2–F9 and F12 through the API."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import World, raw_disk


def _logs(world: World, hid: str, **params: Any) -> list[dict[str, Any]]:
    r = world.admin.get(f"/host-images/{hid}/logs", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_compose_details_and_sub_images(world: World) -> None:
    src = [
        world.upload(world.admin, f"d{i}", raw_disk(i, 2 * 1024 * 1024), project="p0a")
        for i in range(3)
    ]
    r = world.admin.post(
        "/host-images",
        {
            "name": "web",
            "image_ids": [s["id"] for s in src],
            "project_id": world.projects["p0a"],
            "os_type": "Linux",
            "os_arch": "x86_64",
        },
    )
    assert r.status_code == 201, r.text
    hi = r.json()
    assert hi["is_standard"] is False and hi["protected"] is True
    assert hi["status"] == "active"
    assert hi["sub_image_count"] == 3
    assert [s["name"] for s in hi["sub_images"]] == ["web-root", "web-data-1", "web-data-2"]
    assert [s["role"] for s in hi["sub_images"]] == ["root", "data", "data"]
    assert hi["size"] == sum(s["size"] for s in src)
    assert hi["min_disk_mb"] == 2
    assert hi["disk_format"] == "raw"
    assert hi["domain_name"] == "Default" and hi["project_name"] == "p0a"
    assert hi["can_delete"] is False and "protection" in hi["delete_fail_reason"].lower()
    assert all(s["checksum"].startswith("sha256:") for s in hi["sub_images"])
    # the sources are untouched
    for s in src:
        assert world.admin.get(f"/images/{s['id']}").json()["name"] == s["name"]
    subs = world.admin.get(f"/host-images/{hi['id']}/sub-images").json()["items"]
    assert [s["index"] for s in subs] == [0, 1, 2]
    fmts = world.admin.get(f"/host-images/{hi['id']}/formats").json()["items"]
    assert {f["format"] for f in fmts} == {"raw"} and len(fmts) == 3


def test_compose_name_taken_and_generate_name(world: World) -> None:
    world.host_image("p0a", "dup", disks=1)
    img = world.upload(world.admin, "x", raw_disk(9), project="p0a")
    r = world.admin.post(
        "/host-images",
        {"name": "dup", "image_ids": [img["id"]], "project_id": world.projects["p0a"]},
    )
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    r = world.admin.post(
        "/host-images",
        {
            "name": "dup",
            "image_ids": [img["id"]],
            "project_id": world.projects["p0a"],
            "generate_name": True,
        },
    )
    assert r.status_code == 201 and r.json()["name"].startswith("dup-")


def test_edit_attributes_renames_sub_images_and_logs_diff(world: World) -> None:
    hi = world.host_image("p0a", "old", disks=2)
    r = world.admin.patch(
        f"/host-images/{hi['id']}",
        {
            "name": "new",
            "os_type": "Windows",
            "disk_driver": "virtio",
            "min_ram_mb": 2048,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "new" and body["os_type"] == "Windows"
    assert [s["name"] for s in body["sub_images"]] == ["new-root", "new-data-1"]
    entry = _logs(world, hi["id"], action="update")[0]
    assert entry["notes"]["changes"]["name"] == ["old", "new"]
    assert entry["notes"]["changes"]["min_ram_mb"] == [0, 2048]
    # nothing changed → no entry
    before = len(_logs(world, hi["id"], limit=1000))
    assert world.admin.patch(f"/host-images/{hi['id']}", {"name": "new"}).status_code == 200
    assert len(_logs(world, hi["id"], limit=1000)) == before


def test_rename_onto_taken_name_is_409(world: World) -> None:
    world.host_image("p0a", "a", disks=1)
    b = world.host_image("p0a", "b", disks=1)
    r = world.admin.patch(f"/host-images/{b['id']}", {"name": "a"})
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    assert world.admin.get(f"/host-images/{b['id']}").json()["name"] == "b"


def test_rename_onto_a_name_used_in_another_domain_with_three_level_on(world: World) -> None:
    world.host_image("p1a", "elsewhere", disks=1)  # domain D1
    b = world.host_image("p0a", "here", disks=2)  # domain Default
    r = world.admin.patch(f"/host-images/{b['id']}", {"name": "elsewhere"})
    assert r.status_code == 200, r.text
    assert [s["name"] for s in r.json()["sub_images"]] == ["elsewhere-root", "elsewhere-data-1"]
    # and back: the image's own current name is never "taken"
    r = world.admin.patch(f"/host-images/{b['id']}", {"name": "here", "description": "x"})
    assert r.status_code == 200 and r.json()["name"] == "here"


def test_bad_enum_is_422(world: World) -> None:
    hi = world.host_image("p0a", "e", disks=1)
    r = world.admin.patch(f"/host-images/{hi['id']}", {"disk_driver": "floppy"})
    assert r.status_code == 422


def test_five_share_choices(world: World) -> None:
    hi = world.host_image("p0a", "s", disks=2)
    hid = hi["id"]
    # 项目共享-部分
    r = world.admin.post(
        f"/host-images/{hid}/share",
        {"scope": "project", "project_ids": [world.projects["p0b"], world.projects["p0a"]]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["share_scope"] == "project"
    assert r.json()["shared_project_ids"] == [world.projects["p0b"]]
    subs = world.admin.get(f"/images/{hi['sub_images'][1]['id']}").json()
    assert subs["share_scope"] == "project"
    # 项目共享-全部 (three-level on)
    r = world.admin.post(f"/host-images/{hid}/share", {"scope": "domain"})
    assert r.json()["share_scope"] == "domain" and r.json()["shared_domain_ids"] == []
    # 域共享-部分
    r = world.admin.post(
        f"/host-images/{hid}/share", {"scope": "domain", "domain_ids": [world.domains["D1"]]}
    )
    assert r.json()["shared_domain_ids"] == [world.domains["D1"]]
    assert r.json()["shared_domains"][0]["name"] == "D1"
    # 域共享-全部
    r = world.admin.post(f"/host-images/{hid}/share", {"scope": "system"})
    assert r.json()["share_scope"] == "system" and r.json()["shared_domain_ids"] == []
    # 不共享
    r = world.admin.post(f"/host-images/{hid}/share", {"scope": "none"})
    assert r.json()["share_scope"] == "none"
    actions = [e["action"] for e in _logs(world, hid) if e["action"] in ("share", "unshare")]
    assert actions == ["unshare", "share", "share", "share", "share"]
    # empty project list means none
    world.admin.post(f"/host-images/{hid}/share", {"scope": "system"})
    r = world.admin.post(f"/host-images/{hid}/share", {"scope": "project", "project_ids": []})
    assert r.json()["share_scope"] == "none"


def test_share_semantic_refusals_are_400(world: World) -> None:
    hi = world.host_image("p0a", "s4", disks=1)
    hid = hi["id"]
    r = world.admin.post(
        f"/host-images/{hid}/share", {"scope": "project", "project_ids": [world.projects["p1a"]]}
    )
    assert r.status_code == 400 and r.json()["code"] == "project_in_other_domain"
    r = world.admin.post(f"/host-images/{hid}/share", {"scope": "project", "project_ids": ["nope"]})
    assert r.status_code == 400 and r.json()["code"] == "unknown_project"
    r = world.admin.patch("/settings", {"three_level_permissions": False})
    assert r.status_code == 409 and r.json()["code"] == "projects_outside_default"


def test_three_level_off(flat_world: World) -> None:
    w = flat_world
    hi = w.host_image("p0a", "flat", disks=1)
    r = w.admin.post(f"/host-images/{hi['id']}/share", {"scope": "domain"})
    assert r.status_code == 400 and r.json()["code"] == "three_level_disabled"
    r = w.admin.post("/domains", {"name": "Other"})
    r = w.admin.post("/projects", {"name": "x", "domain_id": r.json()["id"]})
    assert r.status_code == 400 and r.json()["code"] == "three_level_disabled"
    # 项目共享-全部 maps to system when three-level is off
    r = w.admin.post(f"/host-images/{hi['id']}/share", {"scope": "system"})
    assert r.json()["share_scope"] == "system"
    w.three_level(True)
    w.admin.post(f"/host-images/{hi['id']}/share", {"scope": "domain"})
    r = w.admin.patch("/settings", {"three_level_permissions": False})
    assert r.status_code == 409 and r.json()["code"] == "domain_shares_exist"


def test_shared_image_visible_to_target_and_read_only(world: World) -> None:
    hi = world.host_image("p0a", "vis", disks=1)
    member_b = world.add_user("mb", "member", "p0b")
    assert member_b.get(f"/host-images/{hi['id']}").status_code == 404
    world.admin.post(
        f"/host-images/{hi['id']}/share",
        {"scope": "project", "project_ids": [world.projects["p0b"]]},
    )
    assert member_b.get(f"/host-images/{hi['id']}").status_code == 200
    listed = member_b.get("/host-images").json()
    assert [i["id"] for i in listed["items"]] == [hi["id"]]
    r = member_b.patch(f"/host-images/{hi['id']}", {"description": "mine now"})
    assert r.status_code == 403
    failed = _logs(world, hi["id"], success="false")
    assert failed and failed[0]["action"] == "update" and failed[0]["actor_user_name"] == "mb"


def test_change_project_moves_sub_images_and_is_refused_while_shared(world: World) -> None:
    hi = world.host_image("p0a", "mv", disks=2)
    hid = hi["id"]
    world.admin.post(f"/host-images/{hid}/share", {"scope": "system"})
    r = world.admin.post(
        f"/host-images/{hid}/change-project", {"project_id": world.projects["p1a"]}
    )
    assert r.status_code == 409 and r.json()["code"] == "shared"
    world.admin.post(f"/host-images/{hid}/share", {"scope": "none"})
    r = world.admin.post(
        f"/host-images/{hid}/change-project", {"project_id": world.projects["p1a"]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["project_id"] == world.projects["p1a"]
    assert body["domain_id"] == world.domains["D1"]
    assert {s["project_id"] for s in body["sub_images"]} == {world.projects["p1a"]}
    entry = _logs(world, hid, action="change_project")[0]
    assert entry["notes"]["old"]["project_id"] == world.projects["p0a"]
    assert entry["notes"]["new"]["project_id"] == world.projects["p1a"]
    r = world.admin.post(f"/host-images/{hid}/change-project", {"project_id": "missing"})
    assert r.status_code == 400


def test_change_project_makes_name_unique_in_target_domain(world: World) -> None:
    world.host_image("p1a", "same", disks=1)
    other = world.host_image("p0a", "same", disks=1)
    r = world.admin.post(
        f"/host-images/{other['id']}/change-project", {"project_id": world.projects["p1b"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"].startswith("same-") and r.json()["name"] != "same"
    assert r.json()["sub_images"][0]["name"] == f"{r.json()['name']}-root"


def test_protection_and_delete(
    world: World,
) -> None:
    hi = world.host_image("p0a", "del", disks=2)
    hid = hi["id"]
    r = world.admin.delete(f"/host-images/{hid}")
    assert r.status_code == 409 and r.json()["code"] == "protected"
    r = world.admin.post(f"/host-images/{hid}/protection", {"protected": False})
    assert r.status_code == 200 and r.json()["protected"] is False
    assert r.json()["can_delete"] is True
    r = world.admin.delete(f"/host-images/{hid}")
    assert r.status_code == 202
    task_id = r.json()["task_id"]
    assert world.admin.get(f"/host-images/{hid}").json()["status"] == "deleting"
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "queued"
    assert world.worker.drain() == 1
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "succeeded"
    assert world.admin.get(f"/host-images/{hid}").status_code == 404
    # logs are kept forever
    entries = world.admin.get("/logs", params={"obj_id": hid}).json()["items"]
    assert [(e["action"], e["success"]) for e in entries] == [
        ("delete", True),
        ("set_protection", True),
        ("delete", False),
        ("create", True),
    ]


def test_delete_removes_data_not_shared_with_sources(world: World) -> None:
    storage = world.client.app.state.storage  # type: ignore[attr-defined]
    hi = world.host_image("p0a", "data", disks=2, protected=False)
    keys_before = set(storage.keys())
    assert keys_before
    world.admin.delete(f"/host-images/{hi['id']}")
    world.worker.drain()
    # composed sub-images share the sources' objects: those stay while the sources exist
    assert set(storage.keys()) == keys_before
    sources = world.admin.get("/images", params={"standalone": "true", "scope": "system"})
    for img in sources.json()["items"]:
        assert world.admin.delete(f"/images/{img['id']}").status_code == 202
    world.worker.drain()
    assert list(storage.keys()) == []


def test_batch_per_item_results(world: World) -> None:
    a = world.host_image("p0a", "ba", disks=1)
    b = world.host_image("p0a", "bb", disks=1)
    r = world.admin.post(
        "/host-images/batch",
        {
            "action": "set_protection",
            "ids": [a["id"], "missing"],
            "params": {"protected": False},
        },
    )
    assert r.status_code == 200
    res = r.json()["results"]
    assert res[0] == {"id": a["id"], "ok": True, "status": 200, "error": None, "task_id": None}
    assert res[1]["ok"] is False and res[1]["status"] == 404
    r = world.admin.post("/host-images/batch", {"action": "delete", "ids": [a["id"], b["id"]]})
    res = r.json()["results"]
    assert res[0]["ok"] and res[0]["status"] == 202 and res[0]["task_id"]
    assert not res[1]["ok"] and res[1]["status"] == 409
    assert res[1]["error"]["code"] == "protected"
    r = world.admin.post(
        "/host-images/batch", {"action": "share", "ids": [b["id"]], "params": {"scope": "system"}}
    )
    assert r.json()["results"][0]["ok"]
    r = world.admin.post(
        "/host-images/batch",
        {
            "action": "change_project",
            "ids": [b["id"]],
            "params": {"project_id": world.projects["p0b"]},
        },
    )
    assert r.json()["results"][0]["error"]["code"] == "shared"


def test_list_views_filters_sort_paging(world: World) -> None:
    for i, (proj, os_type) in enumerate(
        [("p0a", "Linux"), ("p0a", "Windows"), ("p0b", "Linux"), ("p1a", "Linux")]
    ):
        world.host_image(proj, f"img{i}", disks=1, os_type=os_type)
    admin = world.admin
    r = admin.get("/host-images", params={"scope": "system"}).json()
    assert r["total"] == 4 and r["limit"] == 20 and r["offset"] == 0
    names = [i["name"] for i in r["items"]]
    assert names == ["img3", "img2", "img1", "img0"]  # newest first
    r = admin.get(
        "/host-images",
        params={"scope": "system", "order_by": "name", "order": "asc", "limit": 2, "offset": 1},
    ).json()
    assert [i["name"] for i in r["items"]] == ["img1", "img2"] and r["total"] == 4
    r = admin.get("/host-images", params={"scope": "system", "os_type": "Windows"}).json()
    assert [i["name"] for i in r["items"]] == ["img1"]
    r = admin.get("/host-images", params={"scope": "system", "name": "IMG"}).json()
    assert r["total"] == 4
    r = admin.get("/host-images", params={"scope": "system", "domain_id": world.domains["D1"]})
    assert [i["name"] for i in r.json()["items"]] == ["img3"]
    dadmin = world.add_user("da0", "domainadmin", "Default")
    r = dadmin.get("/host-images", params={"scope": "domain"}).json()
    assert r["total"] == 3
    assert dadmin.get("/host-images", params={"scope": "system"}).status_code == 403
    member = world.add_user("m0", "member", "p0a")
    r = member.get("/host-images").json()
    assert {i["name"] for i in r["items"]} == {"img0", "img1"}
    assert member.get("/host-images", params={"scope": "domain"}).status_code == 403
    r = admin.get("/host-images", params={"scope": "system", "order_by": "bogus"})
    assert r.status_code == 422


def test_sub_images_refuse_edit_and_delete(world: World) -> None:
    hi = world.host_image("p0a", "sub", disks=1)
    sid = hi["sub_images"][0]["id"]
    assert world.admin.patch(f"/images/{sid}", {"name": "x"}).status_code == 409
    r = world.admin.patch(f"/images/{sid}", {"description": "system disk"})
    assert r.status_code == 200 and r.json()["description"] == "system disk"
    assert world.admin.delete(f"/images/{sid}").status_code == 409


def test_batch_params_are_validated_like_single_actions(world: World) -> None:
    hi = world.host_image("p0a", "bv", disks=1)
    for action, params in (
        ("update", {"os_type": "Solaris"}),
        ("update", {"min_ram_mb": -5}),
        ("update", {"bogus": 1}),
        ("share", {"scope": "bogus"}),
        ("set_protection", {"protected": "yes"}),
    ):
        r = world.admin.post(
            "/host-images/batch", {"action": action, "ids": [hi["id"]], "params": params}
        )
        assert r.status_code == 422, (action, params, r.text)
    after = world.admin.get(f"/host-images/{hi['id']}").json()
    assert after["os_type"] is None and after["min_ram_mb"] == 0


def test_booleans_are_not_coerced(world: World) -> None:
    hi = world.host_image("p0a", "strict", disks=1)
    r = world.admin.post(f"/host-images/{hi['id']}/protection", {"protected": "yes"})
    assert r.status_code == 422
    assert world.admin.patch(f"/host-images/{hi['id']}", {"protected": 1}).status_code == 422


def test_compose_log_names_the_new_sub_images(world: World) -> None:
    hi = world.host_image("p0a", "notes", disks=2)
    entry = _logs(world, hi["id"], action="create")[0]
    assert entry["notes"]["sub_images"] == [s["id"] for s in hi["sub_images"]]


def test_batch_change_project_keeps_names_unique_within_the_batch(world: World) -> None:
    """Three-level on: names are unique per domain. Two images of the same name from two
    domains moved into a third in one batch: the second is renamed, seeing the first's
    move although both are written by the batch's single commit."""
    x1 = world.host_image("p1a", "twin", disks=1)
    x2 = world.host_image("p2a", "twin", disks=1)
    r = world.admin.post(
        "/host-images/batch",
        {
            "action": "change_project",
            "ids": [x1["id"], x2["id"]],
            "params": {"project_id": world.projects["p0a"]},
        },
    )
    assert r.status_code == 200, r.text
    assert [i["ok"] for i in r.json()["results"]] == [True, True]
    names = sorted(
        world.admin.get(f"/host-images/{i}").json()["name"] for i in (x1["id"], x2["id"])
    )
    assert names[0] == "twin" and names[1].startswith("twin-") and names[1] != "twin"
    subs = world.admin.get(f"/host-images/{x2['id']}/sub-images").json()["items"]
    assert subs[0]["project_id"] == world.projects["p0a"]


def test_list_item_detail_and_sub_images_describe_an_image_alike(world: World) -> None:
    """The list and the details read sub-images and share targets in the page's own
    statement (as JSON); the sub-images endpoint reads rows: all three must agree."""
    r = world.admin.post("/projects", {"name": "p0c", "domain_id": world.domains["Default"]})
    world.projects["p0c"] = r.json()["id"]
    hi = world.host_image("p0a", "same", disks=3)
    hid = hi["id"]
    r = world.admin.post(
        f"/host-images/{hid}/share",
        {"scope": "project", "project_ids": [world.projects["p0b"], world.projects["p0c"]]},
    )
    assert r.status_code == 200, r.text
    detail = world.admin.get(f"/host-images/{hid}").json()
    listed = world.admin.get("/host-images", params={"scope": "system", "name": "same"}).json()
    assert listed["total"] == 1
    assert listed["items"][0] == detail
    subs = world.admin.get(f"/host-images/{hid}/sub-images").json()["items"]
    assert detail["sub_images"] == subs
    assert [s["index"] for s in subs] == [0, 1, 2]
    assert all(s["created_at"].endswith("Z") for s in subs)
    assert detail["created_at"].endswith("Z")
    assert [p["name"] for p in detail["shared_projects"]] == sorted(
        ["p0b", "p0c"], key=lambda n: world.projects[n]
    )
    assert detail["shared_project_ids"] == sorted([world.projects["p0b"], world.projects["p0c"]])


def test_write_answers_equal_a_fresh_read(world: World) -> None:
    """Edits answer from what their lock read (sub-images, share targets) and what they
    changed, without reading again: the answer must be what a GET then shows."""
    r = world.admin.post("/projects", {"name": "p0d", "domain_id": world.domains["Default"]})
    hi = world.host_image("p0a", "fresh", disks=3)
    hid = hi["id"]
    shared = world.admin.post(
        f"/host-images/{hid}/share",
        {"scope": "project", "project_ids": [world.projects["p0b"], r.json()["id"]]},
    )
    assert shared.status_code == 200, shared.text
    for body in (
        {"name": "renamed", "os_version": "12"},
        {"description": "only the text"},
        {"name": "renamed"},  # nothing changes
    ):
        patched = world.admin.patch(f"/host-images/{hid}", body)
        assert patched.status_code == 200, patched.text
        assert patched.json() == world.admin.get(f"/host-images/{hid}").json()
    assert [s["name"] for s in patched.json()["sub_images"]] == [
        "renamed-root",
        "renamed-data-1",
        "renamed-data-2",
    ]
    protected = world.admin.post(f"/host-images/{hid}/protection", {"protected": False})
    assert protected.status_code == 200, protected.text
    after = world.admin.get(f"/host-images/{hid}").json()
    assert protected.json() == after and after["can_delete"] is True
