"""What must hold after any fault: every object in a terminal state, every active object's
stored bytes matching its checksum, no stored object that no row references, no partial
file left on disk."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select

from hostimage.db.models import FormatCopy, HostImage, Image, Server, Task
from hostimage.imaging.guestfish import reap_orphans
from hostimage.services.gc import collect
from hostimage.tasks.worker import Worker
from hostimage.tasks.worker.retry import RetryPolicy
from tests.api.conftest import World

TERMINAL = {
    HostImage: {"active", "killed"},
    Image: {"active", "killed", "queued"},
    Server: {"ready", "running", "failed"},
    FormatCopy: {"active", "failed"},
    Task: {"succeeded", "failed"},
}


def take_over(world: World) -> None:
    """What surviving workers do, until nothing is left to do."""
    rt = world.worker.rt
    worker = Worker(rt, stale_after=timedelta(0), policy=RetryPolicy(base=timedelta(0)))
    reap_orphans()
    for _ in range(20):
        worker.recover_stale()
        ran = worker.drain()
        with rt.factory() as s:
            busy = s.scalar(select(Task.id).where(Task.status.in_(["queued", "running"])).limit(1))
        if busy is None and not ran:
            break
    worker.sweep_scratch()


def _sha256_of(world: World, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in world.client.app.state.storage.read(key):  # type: ignore[attr-defined]
        digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def assert_consistent(world: World) -> None:
    """Every object terminal; every active object's bytes match; nothing unreferenced."""
    rt = world.worker.rt
    storage = world.client.app.state.storage  # type: ignore[attr-defined]
    with rt.factory() as s:
        for model, allowed in TERMINAL.items():
            statuses = {row for row in s.scalars(select(model.status))}  # type: ignore[attr-defined]
            assert statuses <= allowed, (model.__name__, statuses)
        # an image stays queued only while no upload was ever asked of it
        for img in s.scalars(select(Image).where(Image.status == "queued")):
            assert img.host_image_id is None
            assert s.scalar(select(Task.id).where(Task.target_id == img.id)) is None
        actives = [
            (i.object_key, i.checksum)
            for i in s.scalars(select(Image).where(Image.status == "active"))
        ] + [
            (c.object_key, c.checksum)
            for c in s.scalars(select(FormatCopy).where(FormatCopy.status == "active"))
        ]
    for key, checksum in actives:
        assert key is not None and _sha256_of(world, key) == checksum, key
    report = collect(rt.factory, storage, grace=timedelta(0), dry_run=False)
    assert report.error_count == 0, report.summary()
    with rt.factory() as s:
        referenced = set(s.scalars(select(Image.object_key).where(Image.object_key.is_not(None))))
        referenced |= set(
            s.scalars(select(FormatCopy.object_key).where(FormatCopy.object_key.is_not(None)))
        )
    assert set(storage.keys()) == referenced
    assert not list(rt.disks_dir.rglob("*.part")), "a partial disk file was left"
    assert not any(rt.work_dir.iterdir()), "scratch space was left"
