"""kill -9 at every step of upload, save, convert, compose, delete and VM creation, on both
databases: after a surviving worker takes over, every object reaches a terminal state, every
active image's stored bytes match its checksum, and garbage collection leaves no object that
no row references. The operation then succeeds when it is done (or redone).

The crash is real: a worker or API process runs with ``HOSTIMAGE_CRASH_AT=<step>`` and
SIGKILLs itself at that step (``hostimage.crashpoints``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from hostimage.db.models import Task
from tests.api.conftest import World
from tests.dataplane.conftest import TemplateVm
from tests.dataplane.consistency import assert_consistent, take_over
from tests.imaging.diskfactory import build_data_disk
from tests.processes import service_env, start_server, start_worker


def _env(world: World, crash_at: str) -> dict[str, str]:
    return service_env(world, HOSTIMAGE_CRASH_AT=crash_at, HOSTIMAGE_TASK_RETRY_BASE_SECONDS="0")


def _worker(world: World, crash_at: str) -> subprocess.Popen[bytes]:
    return start_worker(_env(world, crash_at))


def _api_server(world: World, crash_at: str) -> tuple[subprocess.Popen[bytes], str]:
    return start_server(_env(world, crash_at), "--workers", "0", "--api-processes", "1")


def _died(proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()
        raise AssertionError("the process never reached its crash step") from None
    assert code == -9, f"the process ended with {code}, not at its crash step"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 9)  # anything it started (qemu-img) dies with it


def _server(world: World, vm: TemplateVm, tmp_path: Path) -> str:
    data = build_data_disk(tmp_path / "data.raw", "random", 24 * 1024 * 1024)
    ids = [
        world.upload(world.admin, "sys", vm.system.path.read_bytes(), project="p0a")["id"],
        world.upload(world.admin, "data", data.read_bytes(), project="p0a")["id"],
    ]
    r = world.admin.post(
        "/servers",
        {
            "name": "crashy",
            "project_id": world.projects["p0a"],
            "disks": [{"image_id": i} for i in ids],
        },
    )
    assert r.status_code == 202, r.text
    world.worker.drain()
    return str(r.json()["id"])


def _saved(world: World, vm: TemplateVm, tmp_path: Path) -> str:
    sid = _server(world, vm, tmp_path)
    r = world.admin.post(f"/servers/{sid}/save-host-image", {"name": "crash-src"})
    world.worker.drain()
    hid = str(r.json()["host_image_id"])
    assert world.admin.get(f"/host-images/{hid}").json()["status"] == "active"
    return hid


# ------------------------------------------------------------------ worker-side operations


@pytest.mark.parametrize(
    "step", ["save.prepared", "save.converted", "save.published", "save.disk_saved"]
)
def test_save_killed_at(world: World, template_vm: TemplateVm, tmp_path: Path, step: str) -> None:
    sid = _server(world, template_vm, tmp_path)
    r = world.admin.post(f"/servers/{sid}/save-host-image", {"name": "crash-save"})
    task_id, hid = r.json()["task_id"], r.json()["host_image_id"]
    _died(_worker(world, step))
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "running"
    take_over(world)
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "succeeded" and task["attempts"] == 2, task
    assert world.admin.get(f"/host-images/{hid}").json()["status"] == "active"
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "ready"
    done = world.admin.get("/logs", params={"obj_id": hid, "action": "save"}).json()["items"]
    assert [e["notes"].get("stage") for e in done].count("done") == 1
    assert_consistent(world)


def test_save_killed_once_too_often_is_given_up(
    world: World, template_vm: TemplateVm, tmp_path: Path
) -> None:
    sid = _server(world, template_vm, tmp_path)
    r = world.admin.post(f"/servers/{sid}/save-host-image", {"name": "crash-dead"})
    task_id, hid = r.json()["task_id"], r.json()["host_image_id"]
    with world.worker.rt.factory() as s:
        s.execute(update(Task).where(Task.id == task_id).values(attempts=4))
        s.commit()
    _died(_worker(world, "save.disk_saved"))
    take_over(world)
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "failed" and "stopped" in task["error"], task
    hi = world.admin.get(f"/host-images/{hid}").json()
    assert hi["status"] == "killed" and "stopped" in hi["status_reason"]
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "ready"
    assert_consistent(world)
    # a killed image may be deleted, never resurrected
    world.admin.post(f"/host-images/{hid}/protection", {"protected": False})
    assert world.admin.delete(f"/host-images/{hid}").status_code == 202
    world.worker.drain()
    assert world.admin.get(f"/host-images/{hid}").status_code == 404


@pytest.mark.parametrize("step", ["convert.started", "convert.published"])
def test_convert_killed_at(
    world: World, template_vm: TemplateVm, tmp_path: Path, step: str
) -> None:
    hid = _saved(world, template_vm, tmp_path)
    task_id = world.admin.post(f"/host-images/{hid}/formats", {"format": "raw"}).json()["task_id"]
    _died(_worker(world, step))
    take_over(world)
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "succeeded"
    fmts = world.admin.get(f"/host-images/{hid}/formats").json()["items"]
    assert [f["status"] for f in fmts if f["format"] == "raw"] == ["active", "active"]
    assert_consistent(world)


def test_delete_killed_after_removing_the_data(
    world: World, template_vm: TemplateVm, tmp_path: Path
) -> None:
    hid = _saved(world, template_vm, tmp_path)
    world.admin.post(f"/host-images/{hid}/protection", {"protected": False})
    task_id = world.admin.delete(f"/host-images/{hid}").json()["task_id"]
    _died(_worker(world, "purge.data_removed"))
    assert world.admin.get(f"/host-images/{hid}").json()["status"] == "deleting"
    take_over(world)
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "succeeded"
    assert world.admin.get(f"/host-images/{hid}").status_code == 404
    assert_consistent(world)


@pytest.mark.parametrize("step", ["create.disks_built", "create.in_place"])
def test_vm_creation_killed_at(
    world: World, template_vm: TemplateVm, tmp_path: Path, step: str
) -> None:
    sys_id = world.upload(world.admin, "sys", template_vm.system.path.read_bytes(), project="p0a")[
        "id"
    ]
    r = world.admin.post(
        "/servers",
        {
            "name": "crash-vm",
            "project_id": world.projects["p0a"],
            "disks": [{"image_id": sys_id}, {"size_mb": 64}],
        },
    )
    task_id, sid = r.json()["task_id"], r.json()["id"]
    _died(_worker(world, step))
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "creating"
    take_over(world)
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "succeeded"
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "ready"
    for index in (0, 1):
        assert world.worker.rt.disk_path(f"{sid}/disk{index}.qcow2").is_file()
    assert_consistent(world)


# --------------------------------------------------------------------- API-side operations


def _token(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.admin.token}"}


@pytest.mark.parametrize("step", ["upload.claimed", "upload.receiving", "upload.published"])
def test_upload_killed_at(world: World, tmp_path: Path, step: str) -> None:
    data = build_data_disk(tmp_path / "up.raw", "random", 12 * 1024 * 1024).read_bytes()
    iid = world.admin.post(
        "/images", {"name": "crash-up", "disk_format": "raw", "project_id": world.projects["p0a"]}
    ).json()["id"]
    proc, url = _api_server(world, step)

    def chunks() -> Any:
        for start in range(0, len(data), 1 << 20):
            yield data[start : start + (1 << 20)]

    with contextlib.suppress(httpx.HTTPError):
        httpx.put(f"{url}/api/v1/images/{iid}/data", content=chunks(), headers=_token(world))
    _died(proc)
    assert world.admin.get(f"/images/{iid}").json()["status"] == "saving"
    take_over(world)
    img = world.admin.get(f"/images/{iid}").json()
    assert img["status"] == "killed" and "interrupted" in img["status_reason"], img
    assert_consistent(world)
    # the upload can be made again
    r = world.admin.put(f"/images/{iid}/data", content=data)
    assert r.status_code == 200, r.text
    assert r.json()["checksum"] == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert_consistent(world)


def test_compose_killed_before_its_commit(world: World) -> None:
    parts = world.host_image("p0a", "crash-parts", disks=2)["sub_images"]
    ids = [sub["id"] for sub in parts]
    proc, url = _api_server(world, "compose.committing")
    body = {"name": "crash-compose", "image_ids": ids, "project_id": world.projects["p0a"]}
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(f"{url}/api/v1/host-images", json=body, headers=_token(world))
    _died(proc)
    listed = world.admin.get("/host-images", params={"scope": "system", "name": "crash-compose"})
    assert listed.json()["total"] == 0
    take_over(world)
    assert_consistent(world)
    r = world.admin.post("/host-images", body)
    assert r.status_code == 201, r.text
    assert_consistent(world)
