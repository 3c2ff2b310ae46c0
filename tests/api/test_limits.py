"""Size limits (SPEC §9.1): ``max_virtual_size_gb`` and ``max_upload_size_gb`` are settings,
enforced at upload and compose, on both databases; and what a delete's log entry records."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from tests.api.conftest import World, raw_disk

MiB = 1024 * 1024


def _image(world: World, name: str, fmt: str = "raw") -> str:
    r = world.admin.post(
        "/images", {"name": name, "disk_format": fmt, "project_id": world.projects["p0a"]}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_the_limits_are_settings(world: World) -> None:
    got = world.admin.get("/settings").json()
    assert got["max_virtual_size_gb"] == 16384 and got["max_upload_size_gb"] == 2048
    r = world.admin.patch("/settings", {"max_upload_size_gb": 0.5, "max_virtual_size_gb": 100})
    assert r.status_code == 200, r.text
    assert (r.json()["max_upload_size_gb"], r.json()["max_virtual_size_gb"]) == (0.5, 100)
    for bad in (0, -1, "x", True, None):
        r = world.admin.patch("/settings", {"max_upload_size_gb": bad})
        assert r.status_code == 422, (bad, r.text)
    member = world.add_user("limits-member", "member", "p0a")
    assert member.patch("/settings", {"max_upload_size_gb": 1}).status_code == 403
    assert world.admin.get("/settings").json()["max_upload_size_gb"] == 0.5


def test_a_header_claiming_a_huge_disk_is_refused(world: World, tmp_path: Path) -> None:
    """A qcow2 whose header declares 2^62 bytes is refused at upload (it used to become
    active, and a raw copy of it would have tried to write that much)."""
    path = tmp_path / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True)
    data = bytearray(path.read_bytes())
    data[24:32] = struct.pack(">Q", 1 << 62)  # the header's size field
    iid = _image(world, "huge", "qcow2")
    r = world.admin.put(f"/images/{iid}/data", content=bytes(data))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "too_large"
    img = world.admin.get(f"/images/{iid}").json()
    assert img["status"] == "killed" and "max_virtual_size_gb" in img["status_reason"]
    assert list(world.client.app.state.storage.keys()) == []  # type: ignore[attr-defined]


def test_an_upload_over_the_limit_stops_with_413(world: World) -> None:
    world.admin.patch("/settings", {"max_upload_size_gb": 1 / 1024})  # 1 MiB
    iid = _image(world, "too-big")
    r = world.admin.put(f"/images/{iid}/data", content=raw_disk(1, 2 * MiB))
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "too_large"
    assert world.admin.get(f"/images/{iid}").json()["status"] == "killed"
    # under the limit it goes through
    ok = _image(world, "fits")
    assert world.admin.put(f"/images/{ok}/data", content=raw_disk(2, MiB)).status_code == 200


def test_compose_checks_the_virtual_size_limit(world: World) -> None:
    src = world.upload(world.admin, "src", raw_disk(3, 2 * MiB), project="p0a")
    world.admin.patch("/settings", {"max_virtual_size_gb": 1 / 1024})  # 1 MiB
    r = world.admin.post(
        "/host-images",
        {"name": "over", "image_ids": [src["id"]], "project_id": world.projects["p0a"]},
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "too_large"
    world.admin.patch("/settings", {"max_virtual_size_gb": 16384})
    r = world.admin.post(
        "/host-images",
        {"name": "over", "image_ids": [src["id"]], "project_id": world.projects["p0a"]},
    )
    assert r.status_code == 201, r.text


def test_the_delete_entry_says_what_was_removed(world: World) -> None:
    hi = world.host_image("p0a", "to-remove", disks=2, protected=False)
    r = world.admin.delete(f"/host-images/{hi['id']}")
    assert r.status_code == 202, r.text
    entries = world.admin.get(f"/host-images/{hi['id']}/logs", params={"action": "delete"})
    (entry,) = entries.json()["items"]
    notes = entry["notes"]
    assert notes["size"] == hi["size"]
    removed = {s["id"]: s for s in notes["sub_images"]}
    for sub in hi["sub_images"]:
        got = removed[sub["id"]]
        assert (got["name"], got["index"], got["size"], got["checksum"]) == (
            sub["name"],
            sub["index"],
            sub["size"],
            sub["checksum"],
        )
