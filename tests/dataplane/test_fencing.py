"""A task whose heartbeat is stolen is finished by exactly one worker.

Worker A runs a real save; while it converts, its heartbeat is made late and worker B takes
the task over and runs it to the end. A's run, still converting, can change nothing any
more: it stops at its next step and removes what it stored itself. One save, one log entry,
every active sub-image's bytes stored once and matching.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from hostimage.db.base import utcnow
from hostimage.db.models import Image, LogEntry, Task
from hostimage.db.queue import claim_next
from hostimage.tasks.worker import Worker
from hostimage.tasks.worker.retry import RetryPolicy
from tests.api.conftest import World
from tests.dataplane.conftest import TemplateVm
from tests.dataplane.consistency import assert_consistent
from tests.imaging.diskfactory import build_data_disk


def test_a_stolen_task_is_finished_by_exactly_one_worker(
    world: World, template_vm: TemplateVm, tmp_path: Path
) -> None:
    big = build_data_disk(tmp_path / "big.raw", "random", 160 * 1024 * 1024)
    ids = [
        world.upload(world.admin, "sys", template_vm.system.path.read_bytes(), project="p0a")["id"],
        world.upload(world.admin, "big", big.read_bytes(), project="p0a")["id"],
    ]
    r = world.admin.post(
        "/servers",
        {
            "name": "fenced",
            "project_id": world.projects["p0a"],
            "disks": [{"image_id": i} for i in ids],
        },
    )
    world.worker.drain()
    sid = r.json()["id"]
    r = world.admin.post(f"/servers/{sid}/save-host-image", {"name": "fenced-save"})
    task_id, hid = r.json()["task_id"], r.json()["host_image_id"]

    rt = world.worker.rt
    # A beats rarely, so that the test decides when its heartbeat is late.
    a = Worker(rt, worker_id="worker-a", heartbeat_seconds=3600)
    claim = claim_next(rt.factory, a.worker_id)
    assert claim is not None and claim.task_id == task_id
    a_thread = threading.Thread(target=a.run_claimed, args=(claim,))
    a_thread.start()
    deadline = time.monotonic() + 120
    while True:  # A is converting
        with rt.factory() as s:
            progress = s.scalar(select(Task.progress).where(Task.id == task_id))
        if progress and progress >= 5:
            break
        assert time.monotonic() < deadline and a_thread.is_alive(), "A never got going"
        time.sleep(0.05)

    b = Worker(rt, worker_id="worker-b", policy=RetryPolicy(base=timedelta(0)))
    # A's progress writes refresh its heartbeat too: make it late until B sees it late.
    for _ in range(100):
        with rt.factory() as s:
            s.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(heartbeat_at=utcnow() - timedelta(hours=1))
            )
            s.commit()
        if b.recover_stale() == 1:
            break
    else:
        raise AssertionError("B never saw A's heartbeat late")
    assert b.drain() == 1
    a_thread.join(timeout=300)
    assert not a_thread.is_alive()

    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "succeeded" and task["attempts"] == 2, task
    assert world.admin.get(f"/host-images/{hid}").json()["status"] == "active"
    with rt.factory() as s:
        worker_of_task = s.scalar(select(Task.worker_id).where(Task.id == task_id))
        done = s.scalars(
            select(LogEntry.notes).where(LogEntry.obj_id == hid, LogEntry.action == "save")
        ).all()
        sub_saves = s.scalars(
            select(LogEntry.obj_id).where(
                LogEntry.root_id == hid,
                LogEntry.obj_type == "image",
                LogEntry.action == "save",
                LogEntry.success.is_(True),
            )
        ).all()
        keys = set(s.scalars(select(Image.object_key).where(Image.host_image_id == hid)))
    assert worker_of_task == "worker-b"
    assert [n.get("stage") for n in done].count("done") == 1
    assert sorted(sub_saves) == sorted(
        world.admin.get(f"/host-images/{hid}").json()["sub_images"][i]["id"] for i in (0, 1)
    )
    storage = world.client.app.state.storage  # type: ignore[attr-defined]
    assert set(storage.keys(f"host-images/{hid}/")) == keys, "A's objects were left behind"
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "ready"
    assert_consistent(world)
