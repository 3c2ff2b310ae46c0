"""Compose and VM creation hold their sources against a concurrent delete and purge, on both
databases: nothing ever references data a purge removed."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from hostimage.db.models import HostImage, Image, Task
from hostimage.db.queue import claim_next
from tests.api.conftest import World, raw_disk


def _pause_commits_of(world: World, marker: str) -> tuple[threading.Event, threading.Event]:
    """Make the app's next commit of a session that added a host image named ``marker`` wait
    until released (the compose is then holding its locks)."""
    reached, release = threading.Event(), threading.Event()
    factory = world.client.app.state.session_factory  # type: ignore[attr-defined]

    def hold(session: Session) -> None:
        held = [*session.new, *session.identity_map.values()]
        if any(isinstance(obj, HostImage) and obj.name == marker for obj in held):
            reached.set()
            assert release.wait(60)

    event.listen(factory, "before_commit", hold)
    return reached, release


def test_a_delete_waits_for_a_compose_that_shares_its_data(world: World) -> None:
    src = world.upload(world.admin, "shared-src", raw_disk(1), project="p0a")
    reached, release = _pause_commits_of(world, "holder")
    composed: dict[str, Any] = {}

    def compose() -> None:
        composed["r"] = world.admin.post(
            "/host-images",
            {"name": "holder", "image_ids": [src["id"]], "project_id": world.projects["p0a"]},
        )

    def delete() -> None:
        composed["d"] = world.admin.delete(f"/images/{src['id']}")

    a = threading.Thread(target=compose)
    a.start()
    assert reached.wait(60), "the compose never reached its commit"
    b = threading.Thread(target=delete)
    b.start()
    time.sleep(1.0)
    assert b.is_alive(), "the delete did not wait for the compose holding its source"
    release.set()
    a.join(60)
    b.join(60)
    assert composed["r"].status_code == 201, composed["r"].text
    assert composed["d"].status_code == 202, composed["d"].text
    world.worker.drain()
    assert world.admin.get(f"/images/{src['id']}").status_code == 404
    hi = world.admin.get(f"/host-images/{composed['r'].json()['id']}").json()
    sub = hi["sub_images"][0]
    with world.worker.rt.factory() as s:
        key = s.scalar(select(Image.object_key).where(Image.id == sub["id"]))
    storage = world.client.app.state.storage  # type: ignore[attr-defined]
    assert key is not None and storage.stat(key) is not None, "the purge removed shared data"
    assert world.admin.get(f"/images/{sub['id']}/data").content == raw_disk(1)


def test_a_purge_waits_for_a_server_being_built_from_the_image(world: World) -> None:
    src = world.upload(world.admin, "build-src", raw_disk(2), project="p0a")
    r = world.admin.post(
        "/servers",
        {
            "name": "from-src",
            "project_id": world.projects["p0a"],
            "disks": [{"image_id": src["id"]}],
        },
    )
    assert r.status_code == 202, r.text
    build_task, sid = r.json()["task_id"], r.json()["id"]
    purge_task = world.admin.delete(f"/images/{src['id']}").json()["task_id"]
    # The purge runs first (as a worker may): it waits for the build instead of removing the
    # data the build is about to copy.
    claim = claim_next(world.worker.rt.factory, "first", ["delete_image"])
    assert claim is not None and claim.task_id == purge_task
    world.worker.run_claimed(claim)
    img = world.admin.get(f"/images/{src['id']}").json()
    assert img["status"] == "deleting" and "from-src" in img["status_reason"], img
    assert world.admin.get(f"/tasks/{purge_task}").json()["status"] == "queued"
    world.worker.drain()  # the build, then (after its backoff) nothing yet
    assert world.admin.get(f"/tasks/{build_task}").json()["status"] == "succeeded"
    assert world.admin.get(f"/servers/{sid}").json()["status"] == "ready"
    with world.worker.rt.factory() as s:  # its backoff has passed
        s.execute(update(Task).where(Task.id == purge_task).values(run_after=None))
        s.commit()
    world.worker.drain()
    assert world.admin.get(f"/tasks/{purge_task}").json()["status"] == "succeeded"
    assert world.admin.get(f"/images/{src['id']}").status_code == 404
