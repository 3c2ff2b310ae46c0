"""A worker killed in the middle of a save or a conversion: the task is retried (or failed
with a reason) and no half-written object is ever marked active."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from hostimage.db.models import Task
from hostimage.imaging.guestfish import OWNER_FILE, SCRATCH_PREFIX, reap_orphans
from hostimage.tasks.worker import Worker
from hostimage.tasks.worker.loop import MAX_ATTEMPTS
from tests.api.conftest import World
from tests.dataplane.conftest import TemplateVm
from tests.imaging.diskfactory import build_data_disk

BIG = 192 * 1024 * 1024


def _start_worker(world: World) -> subprocess.Popen[bytes]:
    settings = world.client.app.state.settings  # type: ignore[attr-defined]
    env = {
        **os.environ,
        "HOSTIMAGE_DATA_DIR": str(settings.data_dir),
        "HOSTIMAGE_DATABASE_URL": settings.effective_database_url,
        "HOSTIMAGE_STORAGE_URL": settings.effective_storage_url,
    }
    for key in ("s3_endpoint", "s3_region", "s3_access_key", "s3_secret_key"):
        if getattr(settings, key):
            env[f"HOSTIMAGE_{key.upper()}"] = getattr(settings, key)
    return subprocess.Popen(
        [sys.executable, "-m", "hostimage.main", "worker"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_running(world: World, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task: dict[str, Any] = world.admin.get(f"/tasks/{task_id}").json()
        if task["status"] == "running" and task["progress"] >= 5:
            return task
        assert task["status"] in ("queued", "running"), task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} never got going")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # What a surviving worker does every 15 s: stop the appliance the dead one may have left.
    reap_orphans()
    assert not any(_owned_by(proc.pid)), "an appliance of the killed worker is still running"


def _owned_by(pid: int) -> Iterator[Path]:
    for note in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*/{OWNER_FILE}"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(note.read_text())["owner"][0] == pid:
                yield note


def _no_active_without_object(world: World, hid: str) -> None:
    storage = world.client.app.state.storage  # type: ignore[attr-defined]
    hi = world.admin.get(f"/host-images/{hid}").json()
    for sub in hi["sub_images"]:
        if sub["status"] == "active":
            assert storage.stat(f"host-images/{hid}/{sub['id']}.qcow2") is not None


def _server(world: World, tmp_path: Path, vm: TemplateVm) -> str:
    big = build_data_disk(tmp_path / "big.raw", "random", BIG)
    ids = [
        world.upload(world.admin, "sys", vm.system.path.read_bytes(), project="p0a")["id"],
        world.upload(world.admin, "big", big.read_bytes(), project="p0a")["id"],
    ]
    r = world.admin.post(
        "/servers",
        {
            "name": "crashy",
            "project_id": world.projects["p0a"],
            "disks": [{"image_id": i} for i in ids],
        },
    )
    world.worker.drain()
    return str(r.json()["id"])


def _recover(world: World) -> int:
    return Worker(world.worker.rt, stale_after=timedelta(0)).recover_stale()


def test_killed_save_is_retried_and_succeeds(
    world: World, template_vm: TemplateVm, tmp_path: Path
) -> None:
    sid = _server(world, tmp_path, template_vm)
    r = world.admin.post(f"/servers/{sid}/save-host-image", {"name": "crash-save"})
    task_id, hid = r.json()["task_id"], r.json()["host_image_id"]
    proc = _start_worker(world)
    try:
        _wait_running(world, task_id)
    finally:
        _kill(proc)
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "running"
    _no_active_without_object(world, hid)
    assert _recover(world) == 1
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "queued"
    world.worker.drain()
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "succeeded" and task["attempts"] == 2, task
    hi = world.admin.get(f"/host-images/{hid}").json()
    assert hi["status"] == "active"
    _no_active_without_object(world, hid)
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "ready"
    # nothing is left in the scratch space
    assert not any(world.worker.rt.work_dir.iterdir())


def test_save_given_up_after_retries_kills_image_and_leaves_no_data(
    world: World, template_vm: TemplateVm, tmp_path: Path
) -> None:
    sid = _server(world, tmp_path, template_vm)
    r = world.admin.post(f"/servers/{sid}/save-host-image", {"name": "crash-dead"})
    task_id, hid = r.json()["task_id"], r.json()["host_image_id"]
    proc = _start_worker(world)
    try:
        _wait_running(world, task_id)
    finally:
        _kill(proc)
    with world.worker.rt.factory() as s:
        s.execute(update(Task).where(Task.id == task_id).values(attempts=MAX_ATTEMPTS))
        s.commit()
    assert _recover(world) == 1
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "failed" and "gave up" in task["error"]
    hi = world.admin.get(f"/host-images/{hid}").json()
    assert hi["status"] == "killed" and hi["status_reason"]
    storage = world.client.app.state.storage  # type: ignore[attr-defined]
    assert list(storage.keys(f"host-images/{hid}/")) == []
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "ready"
    # a killed image may be deleted, never resurrected
    world.admin.post(f"/host-images/{hid}/protection", {"protected": False})
    assert world.admin.delete(f"/host-images/{hid}").status_code == 202


def test_killed_conversion_is_retried(
    world: World, template_vm: TemplateVm, tmp_path: Path
) -> None:
    sid = _server(world, tmp_path, template_vm)
    r = world.admin.post(f"/servers/{sid}/save-host-image", {"name": "crash-conv"})
    hid = r.json()["host_image_id"]
    world.worker.drain()
    r = world.admin.post(f"/host-images/{hid}/formats", {"format": "raw"})
    task_id = r.json()["task_id"]
    proc = _start_worker(world)
    try:
        deadline = time.monotonic() + 120
        while world.admin.get(f"/tasks/{task_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Killed as soon as it runs: a fixed wait let a fast machine finish the conversion
        # first, leaving nothing to recover.
    finally:
        _kill(proc)
    fmts = world.admin.get(f"/host-images/{hid}/formats").json()["items"]
    storage = world.client.app.state.storage  # type: ignore[attr-defined]
    for f in fmts:
        if f["format"] == "raw" and f["status"] == "active":
            assert storage.stat(f"host-images/{hid}/{f['sub_image_id']}.raw") is not None
    assert _recover(world) == 1
    world.worker.drain()
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "succeeded"
    fmts = world.admin.get(f"/host-images/{hid}/formats").json()["items"]
    assert [f["status"] for f in fmts if f["format"] == "raw"] == ["active", "active"]
