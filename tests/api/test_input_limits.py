"""Inputs the databases cannot take are refused at the request (422), not at the database
(500): integers past 64 bits, null for a column that cannot be empty, NUL characters."""

from __future__ import annotations

from tests.api.conftest import World


def _refused(r: object) -> None:
    assert r.status_code == 422, r.text  # type: ignore[attr-defined]
    assert r.json()["code"] == "validation_error"  # type: ignore[attr-defined]


def test_offsets_and_ids_are_bounded(world: World) -> None:
    for path in ("/host-images", "/images", "/servers", "/tasks"):
        _refused(world.admin.get(path, params={"offset": 2**64}))
        _refused(world.admin.get(path, params={"offset": 2**53 + 1}))
        r = world.admin.get(path, params={"offset": 2**53})
        assert r.status_code == 200 and r.json()["items"] == [], r.text
    _refused(world.admin.get(f"/logs/{2**64}"))
    assert world.admin.get(f"/logs/{2**63 - 1}").status_code == 404


def test_null_is_refused_where_a_field_cannot_be_empty(world: World) -> None:
    hi = world.host_image("p0a", "nulls", disks=1, os_distribution="Debian")
    for field in ("name", "description", "disk_driver", "net_driver", "min_ram_mb", "protected"):
        _refused(world.admin.patch(f"/host-images/{hi['id']}", {field: None}))
    r = world.admin.post(
        "/host-images/batch",
        {"action": "update", "ids": [hi["id"]], "params": {"description": None}},
    )
    _refused(r)
    # the fields that may be empty are cleared by null
    r = world.admin.patch(f"/host-images/{hi['id']}", {"os_distribution": None})
    assert r.status_code == 200 and r.json()["os_distribution"] is None, r.text
    image = hi["sub_images"][0]["id"]
    for field in ("name", "description"):
        _refused(world.admin.patch(f"/images/{image}", {field: None}))
    # compose reads null as "not given", as before
    src = world.upload(world.admin, "nulls-src", b"\0" * 4096)
    body = {"name": "nulls-2", "image_ids": [src["id"]], "description": None, "min_ram_mb": None}
    r = world.admin.post("/host-images", body)
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "" and r.json()["min_ram_mb"] == 0


def test_text_no_database_stores_is_refused(world: World) -> None:
    hi = world.host_image("p0a", "nul", disks=1)
    _refused(world.admin.patch(f"/host-images/{hi['id']}", {"description": "a\x00b"}))
    _refused(world.admin.post("/domains", {"name": "x", "description": "\x00"}))
    _refused(world.admin.get("/host-images", params={"name": "a\x00"}))
    _refused(world.admin.get("/host-images/a%00b"))
    r = world.client.post(
        "/api/v1/domains",
        content=b'{"name": "lone \\ud800 surrogate"}',
        headers={
            "Authorization": f"Bearer {world.admin.token}",
            "Content-Type": "application/json",
        },
    )
    _refused(r)
    assert world.admin.get(f"/host-images/{hi['id']}").json()["description"] == ""
