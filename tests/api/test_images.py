"""System images: streamed upload with checksum and format check, download with Range."""

from __future__ import annotations

import hashlib

from tests.api.conftest import World, raw_disk

QCOW2_MAGIC = b"QFI\xfb"


def test_upload_checksum_size_and_download(world: World) -> None:
    data = raw_disk(7, 3 * 1024 * 1024 + 123)
    img = world.upload(world.admin, "disk", data, project="p0a")
    assert img["status"] == "active"
    assert img["size"] == len(data)
    assert img["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    r = world.admin.get(f"/images/{img['id']}/data")
    assert r.status_code == 200 and r.content == data
    assert r.headers["etag"] == f'"{img["checksum"]}"'
    r = world.admin.get(f"/images/{img['id']}/data", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    r = world.admin.get(f"/images/{img['id']}/data", headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = world.admin.get(f"/images/{img['id']}/data", headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416


def test_format_mismatch_is_refused_and_the_image_ends_killed(world: World) -> None:
    r = world.admin.post("/images", {"name": "liar", "disk_format": "qcow2"})
    iid = r.json()["id"]
    r = world.admin.put(
        f"/images/{iid}/data",
        content=raw_disk(1),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "format_mismatch"
    img = world.admin.get(f"/images/{iid}").json()
    assert img["status"] == "killed" and "qcow2" in img["status_reason"]
    assert list(world.client.app.state.storage.keys()) == []  # type: ignore[attr-defined]
    # a retry with the right declaration works
    r = world.admin.post("/images", {"name": "honest", "disk_format": "raw"})
    r = world.admin.put(f"/images/{r.json()['id']}/data", content=raw_disk(1))
    assert r.status_code == 200
    # the killed image can be deleted
    assert world.admin.delete(f"/images/{iid}").status_code == 202


def test_a_killed_upload_takes_a_new_upload(world: World) -> None:
    iid = world.admin.post("/images", {"name": "again", "disk_format": "raw"}).json()["id"]
    r = world.admin.put(f"/images/{iid}/data", content=b"")
    assert r.status_code == 422
    img = world.admin.get(f"/images/{iid}").json()
    assert img["status"] == "killed" and img["status_reason"] == "The upload is empty."
    r = world.admin.put(f"/images/{iid}/data", content=raw_disk(7))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["status_reason"] is None
    # each upload was a task of its own, held by the request; both ended
    tasks = world.admin.get("/tasks", params={"target_id": iid}).json()["items"]
    assert [(t["kind"], t["status"]) for t in tasks] == [
        ("upload", "succeeded"),
        ("upload", "failed"),
    ]


def test_declared_raw_but_qcow2_content_is_refused(world: World) -> None:
    fake = bytearray(raw_disk(2))
    fake[:4] = QCOW2_MAGIC
    r = world.admin.post("/images", {"name": "sneaky", "disk_format": "raw"})
    r = world.admin.put(f"/images/{r.json()['id']}/data", content=bytes(fake))
    assert r.status_code == 400


def test_upload_only_once_and_not_by_viewer(world: World) -> None:
    img = world.upload(world.admin, "once", raw_disk(3), project="p0a")
    r = world.admin.put(f"/images/{img['id']}/data", content=raw_disk(3))
    assert r.status_code == 409
    viewer = world.add_user("v", "viewer", "p0a")
    assert viewer.post("/images", {"name": "nope", "disk_format": "raw"}).status_code == 403
    assert viewer.get(f"/images/{img['id']}").status_code == 200


def test_images_list_standalone_filter(world: World) -> None:
    world.host_image("p0a", "hi", disks=2)
    all_items = world.admin.get("/images", params={"scope": "system"}).json()
    standalone = world.admin.get("/images", params={"scope": "system", "standalone": "true"}).json()
    assert all_items["total"] == 4 and standalone["total"] == 2


def test_refusals_on_images_are_logged(world: World) -> None:
    img = world.upload(world.admin, "guarded", raw_disk(4), project="p0a")
    viewer = world.add_user("peek", "viewer", "p0a")
    assert viewer.patch(f"/images/{img['id']}", {"description": "x"}).status_code == 403
    assert world.admin.put(f"/images/{img['id']}/data", content=raw_disk(4)).status_code == 409
    entries = world.admin.get("/logs", params={"obj_id": img["id"], "success": "false"})
    got = [(e["action"], e["notes"]["error"]["code"]) for e in entries.json()["items"]]
    assert got == [("save", "bad_status"), ("update", "forbidden")]


def test_name_filter_takes_wildcards_literally(world: World) -> None:
    world.upload(world.admin, "plain", raw_disk(5), project="p0a")
    r = world.admin.get("/images", params={"scope": "system", "name": "%"})
    assert r.json()["total"] == 0


def test_416_names_the_size(world: World) -> None:
    data = raw_disk(6)
    img = world.upload(world.admin, "small", data, project="p0a")
    r = world.admin.get(f"/images/{img['id']}/data", headers={"Range": "bytes=99999999-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
