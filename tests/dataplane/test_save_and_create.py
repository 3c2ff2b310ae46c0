"""F1 and F11 end to end on real disks: template VM → save host image → new VMs from it.

Everything is real: qemu-img, libguestfs on the guest file systems, the database, storage.
Results are read back independently with debugfs and ``qemu-img compare``.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, World
from tests.dataplane.conftest import TemplateVm
from tests.imaging.diskfactory import (
    OLD_MACHINE_ID,
    PAYLOAD_PATH,
    TEMPLATE_HOSTNAME,
    DiskReader,
    open_filesystem,
    payload_bytes,
)

# A well-formed ed25519 public key (its 32 key bytes are 0..31): the identity rules decode it.
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f test@ci"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _upload_file(world: World, api: Api, name: str, path: Path, project: str) -> str:
    return str(world.upload(api, name, path.read_bytes(), project=project)["id"])


def _drain(world: World) -> None:
    world.worker.drain()


def _server_disk(world: World, server_id: str, index: int) -> Path:
    rt = world.worker.rt
    return rt.disk_path(f"{server_id}/disk{index}.qcow2")


def _download(world: World, image_id: str, dest: Path, fmt: str | None = None) -> Path:
    params = {"format": fmt} if fmt else {}
    r = world.admin.get(f"/images/{image_id}/data", params=params)
    assert r.status_code == 200, r.text
    dest.write_bytes(r.content)
    return dest


def _compare(a: Path, a_fmt: str, b: Path, b_fmt: str) -> bool:
    done = subprocess.run(
        ["qemu-img", "compare", "-f", a_fmt, "-F", b_fmt, str(a), str(b)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@contextmanager
def _root_fs(disk: Path, fmt: str, tmp: Path) -> Iterator[DiskReader]:
    tmp.mkdir(parents=True, exist_ok=True)
    with open_filesystem(disk, fmt, tmp, partition=2) as reader:
        yield reader


def _make_template_server(world: World, vm: TemplateVm) -> dict[str, Any]:
    ids = [
        _upload_file(world, world.admin, "tpl-system", vm.system.path, "p0a"),
        _upload_file(world, world.admin, "tpl-data1", vm.data_ext4, "p0a"),
        _upload_file(world, world.admin, "tpl-data2", vm.data_random, "p0a"),
    ]
    r = world.admin.post(
        "/servers",
        {
            "name": "template",
            "project_id": world.projects["p0a"],
            "disks": [{"image_id": i} for i in ids],
        },
    )
    assert r.status_code == 202, r.text
    server = r.json()
    assert server["status"] == "creating"
    _drain(world)
    task = world.admin.get(f"/tasks/{server['task_id']}").json()
    assert task["status"] == "succeeded", task
    server = world.admin.get(f"/servers/{server['id']}").json()
    assert server["status"] == "ready" and [d["index"] for d in server["disks"]] == [0, 1, 2]
    return server


def test_save_host_image_and_create_vms(
    world: World, template_vm: TemplateVm, tmp_path: Path
) -> None:
    server = _make_template_server(world, template_vm)
    sid = server["id"]
    own_disks = [_server_disk(world, sid, i) for i in range(3)]
    before = [_sha256(p) for p in own_disks]

    # F1: only a stopped server can be saved
    assert world.admin.post(f"/servers/{sid}/start").json()["status"] == "running"
    r = world.admin.post(f"/servers/{sid}/save-host-image", {"name": "web-tpl"})
    assert r.status_code == 409 and r.json()["code"] == "server_not_stopped"
    world.admin.post(f"/servers/{sid}/stop")
    r = world.admin.post(
        f"/servers/{sid}/save-host-image",
        {"name": "web-tpl", "description": "golden", "auto_start": True},
    )
    assert r.status_code == 202, r.text
    task_id, hid = r.json()["task_id"], r.json()["host_image_id"]
    hi = world.admin.get(f"/host-images/{hid}").json()
    assert hi["status"] == "queued" and hi["protected"] is True and hi["sub_image_count"] == 3
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "saving"
    _drain(world)
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "succeeded" and task["progress"] == 100, task
    hi = world.admin.get(f"/host-images/{hid}").json()
    assert hi["status"] == "active" and hi["is_standard"] is True
    assert hi["source_server_id"] == sid and hi["disk_format"] == "qcow2"
    assert [s["name"] for s in hi["sub_images"]] == [
        "web-tpl-root",
        "web-tpl-data-1",
        "web-tpl-data-2",
    ]
    assert all(s["checksum"].startswith("sha256:") for s in hi["sub_images"])
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "running"  # auto_start
    # the server's own disks were only read
    assert [_sha256(p) for p in own_disks] == before

    # what was cleaned is in the log
    entries = world.admin.get(f"/host-images/{hid}/logs", params={"action": "save"}).json()
    done = [
        e
        for e in entries["items"]
        if e["obj_type"] == "host_image" and e["notes"].get("stage") == "done"
    ]
    assert done, entries
    cleaned = done[0]["notes"]["cleaned"]
    assert any("ssh_host" in str(p) for p in cleaned["removed"]), cleaned

    # the saved system disk: identity gone, data intact, hostname kept
    sys_copy = _download(world, hi["sub_images"][0]["id"], tmp_path / "sys.qcow2")
    with _root_fs(sys_copy, "qcow2", tmp_path / "sysfs") as root:
        assert not [n for n in root.listdir("/etc/ssh") if n.startswith("ssh_host_")]
        assert root.read("/etc/machine-id") == b""
        assert root.listdir("/var/lib/cloud") == []
        assert root.listdir("/tmp") == []
        assert root.read(PAYLOAD_PATH) == payload_bytes()
        assert root.read("/etc/hostname") == f"{TEMPLATE_HOSTNAME}\n".encode()
    # data disks are copied as they are
    for idx, original in ((1, template_vm.data_ext4), (2, template_vm.data_random)):
        got = _download(world, hi["sub_images"][idx]["id"], tmp_path / f"d{idx}.qcow2")
        assert _compare(got, "qcow2", original, "raw")

    # F11: a VM from the host image gets the data and a fresh identity
    r = world.admin.post(
        "/servers",
        {
            "name": "web-1",
            "project_id": world.projects["p0a"],
            "host_image_id": hid,
            "hostname": "web-1",
            "login_user": "cloud",
            "password": "correct horse 1",
            "disks": [{"size_mb": 4}],
        },
    )
    assert r.status_code == 202, r.text
    vm = r.json()
    _drain(world)
    vm = world.admin.get(f"/servers/{vm['id']}").json()
    assert vm["status"] == "ready", vm
    assert [d["index"] for d in vm["disks"]] == [0, 1, 2, 3]
    with _root_fs(_server_disk(world, vm["id"], 0), "qcow2", tmp_path / "vm1fs") as root:
        assert root.read("/etc/hostname").strip() == b"web-1"
        machine_id = root.read("/etc/machine-id").strip()
        assert len(machine_id) == 32 and machine_id != OLD_MACHINE_ID.encode()
        shadow = root.read("/etc/shadow").decode()
        cloud = next(line for line in shadow.splitlines() if line.startswith("cloud:"))
        assert cloud.split(":")[1].startswith("$6$")
        assert root.read(PAYLOAD_PATH) == payload_bytes()
    for idx, original in ((1, template_vm.data_ext4), (2, template_vm.data_random)):
        assert _compare(_server_disk(world, vm["id"], idx), "qcow2", original, "raw")

    r = world.admin.post(
        "/servers",
        {
            "name": "web-2",
            "project_id": world.projects["p0a"],
            "host_image_id": hid,
            "login_user": "cloud",
            "ssh_public_key": SSH_KEY,
        },
    )
    assert r.status_code == 202, r.text
    _drain(world)
    with _root_fs(_server_disk(world, r.json()["id"], 0), "qcow2", tmp_path / "vm2fs") as root:
        assert SSH_KEY.encode() in root.read("/home/cloud/.ssh/authorized_keys")
        key_stat = root.stat("/home/cloud/.ssh/authorized_keys")
        assert key_stat is not None and key_stat.mode == 0o600
        assert root.read("/etc/hostname").strip() == b"web-2"

    # 多云镜像: a vmdk copy on demand, downloadable and listed with checksums
    r = world.admin.post(f"/host-images/{hid}/formats", {"format": "vmdk"})
    assert r.status_code == 202, r.text
    _drain(world)
    fmts = world.admin.get(f"/host-images/{hid}/formats").json()["items"]
    vmdk = [f for f in fmts if f["format"] == "vmdk"]
    assert len(vmdk) == 3 and all(f["status"] == "active" for f in vmdk), fmts
    assert all(f["checksum"].startswith("sha256:") for f in vmdk)
    got = _download(world, hi["sub_images"][2]["id"], tmp_path / "d2.vmdk", fmt="vmdk")
    assert _compare(got, "vmdk", template_vm.data_random, "raw")

    # deleting removes every object of the host image, servers made from it keep working
    storage = world.client.app.state.storage  # type: ignore[attr-defined]
    assert [k for k in storage.keys(f"host-images/{hid}/")]
    world.admin.post(f"/host-images/{hid}/protection", {"protected": False})
    assert world.admin.delete(f"/host-images/{hid}").status_code == 202
    _drain(world)
    assert list(storage.keys(f"host-images/{hid}/")) == []
    assert world.admin.get(f"/servers/{vm['id']}").json()["status"] == "ready"
    assert _server_disk(world, vm["id"], 0).exists()


def test_save_is_refused_for_other_projects_and_viewers(world: World) -> None:
    r = world.admin.post(
        "/servers",
        {"name": "blank", "project_id": world.projects["p0a"], "disks": [{"size_mb": 1}]},
    )
    sid = r.json()["id"]
    _drain(world)
    viewer = world.add_user("view", "viewer", "p0a")
    r = viewer.post(f"/servers/{sid}/save-host-image", {"name": "nope"})
    assert r.status_code == 403
    other = world.add_user("other", "member", "p0b")
    assert other.post(f"/servers/{sid}/save-host-image", {"name": "nope"}).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "disks": [{"size_mb": 1, "image_id": "a"}]},
        {"name": "x", "disks": []},
        {"name": "x", "hostname": "bad_host!"},
    ],
)
def test_server_validation(world: World, body: dict[str, Any]) -> None:
    assert world.admin.post("/servers", body).status_code in (400, 422)


def test_server_refusals_are_logged_and_pending_save_cannot_be_deleted(world: World) -> None:
    r = world.admin.post(
        "/servers",
        {
            "name": "s1",
            "project_id": world.projects["p0a"],
            "disks": [{"size_mb": 1}],
            "os_type": "Windows",
        },
    )
    sid = r.json()["id"]
    assert r.json()["disk_driver"] == "ide" and r.json()["net_driver"] == "e1000"
    _drain(world)
    world.admin.post(f"/servers/{sid}/start")
    assert world.admin.post(f"/servers/{sid}/save-host-image", {"name": "x"}).status_code == 409
    assert world.admin.delete(f"/servers/{sid}").status_code == 409
    entries = world.admin.get("/logs", params={"obj_id": sid, "success": "false"}).json()
    assert [e["action"] for e in entries["items"]] == ["delete", "save"]
    world.admin.post(f"/servers/{sid}/stop")
    r = world.admin.post(f"/servers/{sid}/save-host-image", {"name": "pending", "protected": False})
    hid = r.json()["host_image_id"]
    r = world.admin.delete(f"/host-images/{hid}")
    assert r.status_code == 409 and r.json()["code"] == "saving"
