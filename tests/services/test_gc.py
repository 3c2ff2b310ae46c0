"""Garbage collection of stored objects, on both deployments (SQLite + local files,
PostgreSQL + S3): unreferenced old objects go; referenced, young and rewritten ones stay;
incomplete writes of dead writers go; errors are reported; the ``gc`` command prints it all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from hostimage.db.engine import make_session_factory, session_scope
from hostimage.db.models import FormatCopy, Image
from hostimage.services.gc import Removal, collect, referenced_keys
from hostimage.storage import Storage, StorageError
from hostimage.storage.local import LocalStorage
from hostimage.storage.s3 import S3Storage
from tests.api.conftest import World, raw_disk
from tests.processes import service_env
from tests.storage.test_local import immutable, mutable

DAY = timedelta(days=1)
LATER = timedelta(days=2)  # ``now`` this far ahead makes every object older than a day


def _now() -> datetime:
    return datetime.now(UTC)


def _put(storage: Storage, key: str, data: bytes) -> None:
    writer = storage.open_writer(key)
    writer.write(data)
    writer.publish()


def _keys(storage: Storage) -> set[str]:
    return set(storage.keys())


@pytest.fixture()
def factory(app_env: tuple[Any, Engine]) -> sessionmaker[Session]:
    return make_session_factory(app_env[1])


@pytest.fixture()
def storage(world: World) -> Storage:
    found: Storage = world.client.app.state.storage  # type: ignore[attr-defined]
    return found


def _referenced_in_db(factory: sessionmaker[Session]) -> set[str]:
    with session_scope(factory) as s:
        keys = set(s.scalars(select(Image.object_key).where(Image.object_key.is_not(None))))
        keys |= set(
            s.scalars(select(FormatCopy.object_key).where(FormatCopy.object_key.is_not(None)))
        )
    return {k for k in keys if k}


def _catalogue(world: World) -> dict[str, Any]:
    """A standalone image, a host image composed from two uploads (so each of their objects
    is named by two rows) and a qcow2 format copy of its first sub-image."""
    standalone = world.upload(world.admin, "alone", raw_disk(7), project="p0a")
    hi = world.host_image("p0a", "composed", disks=2)
    r = world.admin.post(f"/host-images/{hi['id']}/formats", {"format": "qcow2"})
    assert r.status_code == 202, r.text
    world.worker.drain()
    return {"standalone": standalone, "host_image": hi}


def test_unreferenced_old_objects_go_and_referenced_ones_stay(
    world: World, storage: Storage, factory: sessionmaker[Session]
) -> None:
    cat = _catalogue(world)
    referenced = _referenced_in_db(factory)
    hid = cat["host_image"]["id"]
    with session_scope(factory) as s:
        shared = s.scalars(
            select(Image.object_key).where(Image.host_image_id == hid).order_by(Image.idx)
        ).all()
        copies = s.scalars(select(FormatCopy.object_key).where(FormatCopy.object_key.is_not(None)))
        copy_keys = [k for k in copies if k]
        for key in shared:  # each composed sub-image shares its source's object
            rows = s.scalars(select(Image.id).where(Image.object_key == key)).all()
            assert len(rows) == 2
    assert copy_keys and all(k.startswith(f"host-images/{hid}/") for k in copy_keys)
    assert referenced == _keys(storage)
    orphans = {
        f"images/{uuid.uuid4().hex}/20240101000000000000": b"interrupted upload",
        f"host-images/{uuid.uuid4().hex}/{uuid.uuid4().hex}.qcow2": b"purged meanwhile",
        f"host-images/{hid}/{uuid.uuid4().hex}.vmdk": b"beside live objects",
    }
    for key, data in orphans.items():
        _put(storage, key, data)

    seen: list[Removal] = []
    report = collect(
        factory,
        storage,
        grace=DAY,
        dry_run=False,
        batch=2,  # several batches, one of them mixing kept and removed objects
        now=_now() + LATER,
        on_removal=seen.append,
    )

    assert _keys(storage) == referenced
    assert {r.key for r in report.removals} == set(orphans)
    assert seen == report.removals
    assert all(r.kind == "object" and r.age > DAY for r in report.removals)
    assert {r.key: r.size for r in report.removals} == {k: len(v) for k, v in orphans.items()}
    assert report.removed_objects == 3
    assert report.removed_bytes == sum(len(v) for v in orphans.values())
    assert report.scanned == len(referenced) + 3
    assert report.kept_referenced == len(referenced)
    assert (report.kept_young, report.error_count, report.errors) == (0, 0, [])
    # every referenced object still reads back whole
    for img in world.admin.get("/images", params={"scope": "system"}).json()["items"]:
        if img["status"] == "active":
            r = world.admin.get(f"/images/{img['id']}/data")
            assert r.status_code == 200, r.text

    # a key named by one row only, once the other row is deleted, is still referenced
    sources = [i for i in _standalone_sources(world) if i["name"].startswith("composed-src")]
    for img in sources:
        assert world.admin.delete(f"/images/{img['id']}").status_code == 202
    world.worker.drain()
    again = collect(factory, storage, grace=DAY, dry_run=False, now=_now() + LATER)
    assert again.removed_objects == 0
    assert set(shared) <= _keys(storage)
    assert _keys(storage) == _referenced_in_db(factory)


def _standalone_sources(world: World) -> list[dict[str, Any]]:
    r = world.admin.get("/images", params={"standalone": "true", "scope": "system"})
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_young_unreferenced_objects_stay(
    world: World, storage: Storage, factory: sessionmaker[Session]
) -> None:
    world.upload(world.admin, "kept", raw_disk(1), project="p0a")
    key = f"images/{uuid.uuid4().hex}/20990101000000000000"
    _put(storage, key, b"just published, row not committed yet")
    report = collect(factory, storage, grace=DAY, dry_run=False)
    assert key in _keys(storage)
    assert report.removed_objects == 0
    assert report.kept_young == 2  # the orphan and the uploaded image's object
    # the grace is what protects it: without one it goes
    time.sleep(1.1)  # S3 listings give whole seconds
    report = collect(factory, storage, grace=timedelta(0), dry_run=False)
    assert [r.key for r in report.removals] == [key]
    assert key not in _keys(storage)


def test_dry_run_removes_nothing_and_says_what_would_go(
    world: World, storage: Storage, factory: sessionmaker[Session]
) -> None:
    world.upload(world.admin, "kept", raw_disk(2), project="p0a")
    orphan = f"images/{uuid.uuid4().hex}/1"
    _put(storage, orphan, b"x" * 1000)
    writer = storage.open_writer("images/dead-writer/1")
    writer.write(b"y" * (17 * 1024 * 1024))  # past one S3 part: the upload exists
    before = _keys(storage)
    report = collect(factory, storage, grace=DAY, dry_run=True, now=_now() + LATER)
    assert report.dry_run
    assert _keys(storage) == before
    assert [(r.kind, r.key, r.size) for r in report.removals if r.kind == "object"] == [
        ("object", orphan, 1000)
    ]
    assert report.removed_incomplete == 1
    assert "would remove object" in report.removals[0].describe(True)
    assert report.summary().startswith("Would remove 1 unreferenced object(s)")
    # the write is still alive: it can publish
    writer.publish()
    assert "images/dead-writer/1" in _keys(storage)


def test_incomplete_writes_of_dead_writers_go(
    world: World, storage: Storage, factory: sessionmaker[Session]
) -> None:
    stalled = storage.open_writer("images/stalled/1")
    stalled.write(b"s" * (17 * 1024 * 1024))
    report = collect(factory, storage, grace=DAY, dry_run=False)
    assert report.removed_incomplete == 0  # it received bytes just now
    report = collect(factory, storage, grace=DAY, dry_run=False, now=_now() + LATER)
    assert report.removed_incomplete == 1
    [removal] = report.removals
    assert removal.kind == "incomplete" and removal.size > 0
    assert removal.size == report.removed_incomplete_bytes
    assert list(storage.incomplete_writes(_now() + LATER)) == []
    if isinstance(storage, S3Storage):
        assert removal.key == "images/stalled/1"
        uploads = storage.client.list_multipart_uploads(
            Bucket=storage.bucket, Prefix=f"{storage.prefix}/"
        )
        assert uploads.get("Uploads", []) == []
    else:
        assert isinstance(storage, LocalStorage)
        assert list(storage.tmp_dir.iterdir()) == []
    with pytest.raises(StorageError):
        stalled.publish()
    assert "images/stalled/1" not in _keys(storage)


# --- real ages on local files ------------------------------------------------------------


@pytest.fixture()
def local(tmp_path: Path) -> LocalStorage:
    """Local storage beside the deployment's database, whichever it is: file times can be set."""
    return LocalStorage(tmp_path / "gc-objects")


def _backdate(path: Path, age: timedelta) -> None:
    then = time.time() - age.total_seconds()
    os.utime(path, (then, then))


def test_the_age_check_uses_the_objects_real_times(
    factory: sessionmaker[Session], local: LocalStorage
) -> None:
    old, recent = "images/a/old", "images/b/recent"
    _put(local, old, b"2 days old")
    _put(local, recent, b"23 hours old")
    _backdate(local.root / old, 2 * DAY)
    _backdate(local.root / recent, timedelta(hours=23))
    dead = local.open_writer("images/c/dead")
    dead.write(b"d" * (1 << 20))
    live = local.open_writer("images/d/live")
    live.write(b"l" * (1 << 20))
    [dead_tmp] = [p for p in local.tmp_dir.iterdir() if p.stat().st_size and _first(p) == b"d"]
    _backdate(dead_tmp, timedelta(hours=25))

    report = collect(factory, local, grace=DAY, dry_run=False)

    assert [(r.kind, r.key) for r in report.removals] == [
        ("object", old),
        ("incomplete", f".tmp/{dead_tmp.name}"),
    ]
    assert timedelta(hours=47) < report.removals[0].age < timedelta(hours=49)
    assert _keys(local) == {recent}
    assert not (local.root / "images" / "a").exists()  # emptied directories go too
    live.publish()
    assert _keys(local) == {recent, "images/d/live"}


def _first(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(1)


def test_an_object_referenced_during_the_sweep_stays(
    factory: sessionmaker[Session], local: LocalStorage, world: World
) -> None:
    img = world.upload(world.admin, "target", raw_disk(3), project="p0a")
    keys = ["images/x/1", "images/y/2"]
    for key in keys:
        _put(local, key, key.encode())
        _backdate(local.root / key, 2 * DAY)

    def reference_the_other(removal: Removal) -> None:
        # a row commits a reference to the object the sweep has not looked at yet
        other = next(k for k in keys if k != removal.key)
        with session_scope(factory) as s:
            s.execute(update(Image).where(Image.id == img["id"]).values(object_key=other))
            s.commit()

    report = collect(
        factory, local, grace=DAY, dry_run=False, batch=1, on_removal=reference_the_other
    )
    assert report.removed_objects == 1
    kept = next(k for k in keys if k != report.removals[0].key)
    assert _keys(local) == {kept}
    assert report.kept_referenced == 1


def test_an_object_rewritten_during_the_sweep_stays(
    factory: sessionmaker[Session], local: LocalStorage
) -> None:
    keys = ["host-images/h/1.vmdk", "host-images/h/2.vmdk"]
    for key in keys:
        _put(local, key, b"old")
        _backdate(local.root / key, 2 * DAY)

    def rewrite_the_other(removal: Removal) -> None:
        # a conversion publishes a fresh object under the same key (its row commits next)
        _put(local, next(k for k in keys if k != removal.key), b"fresh")

    report = collect(factory, local, grace=DAY, dry_run=False, on_removal=rewrite_the_other)
    assert report.removed_objects == 1
    kept = next(k for k in keys if k != report.removals[0].key)
    assert b"".join(local.read(kept)) == b"fresh"
    assert report.kept_young == 1


def test_a_storage_error_is_reported_and_the_sweep_goes_on(
    factory: sessionmaker[Session], local: LocalStorage
) -> None:
    keys = ["images/a/1", "images/b/2", "images/c/3"]
    for key in keys:
        _put(local, key, b"orphan")
    locked = local.root / keys[1]
    immutable(locked)
    try:
        report = collect(factory, local, grace=DAY, dry_run=False, now=_now() + LATER)
    finally:
        mutable(locked)
    assert _keys(local) == {keys[1]}
    assert report.removed_objects == 2
    assert report.error_count == 1
    assert report.errors[0].startswith(f"removing {keys[1]}: ")
    assert "1 error(s)" in report.summary()


def test_an_unreachable_storage_is_reported(
    factory: sessionmaker[Session], s3_endpoint_down: S3Storage
) -> None:
    report = collect(factory, s3_endpoint_down, grace=DAY, dry_run=False)
    assert report.removed_objects == report.scanned == 0
    assert report.error_count == 2
    assert report.errors[0].startswith("listing objects: ")
    assert report.errors[1].startswith("listing incomplete writes: ")


@pytest.fixture()
def s3_endpoint_down() -> S3Storage:
    """S3 storage whose endpoint refuses connections (nothing listens on the port)."""
    return S3Storage(
        "bucket",
        "prefix",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        region="us-east-1",
        access_key="k",
        secret_key="s",
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_references_are_read_in_chunks(
    world: World, storage: Storage, factory: sessionmaker[Session]
) -> None:
    img = world.upload(world.admin, "one", raw_disk(4), project="p0a")
    with session_scope(factory) as s:
        real = s.scalar(select(Image.object_key).where(Image.id == img["id"]))
    assert real is not None
    many = [f"images/none/{i}" for i in range(1200)] + [real]
    assert referenced_keys(factory, many) == {real}
    assert referenced_keys(factory, []) == set()


# --- the command ------------------------------------------------------------------------


def _gc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hostimage.main", "gc", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture()
def orphan(world: World, storage: Storage) -> Iterator[str]:
    world.upload(world.admin, "kept", raw_disk(5), project="p0a")
    key = f"images/{uuid.uuid4().hex}/1"
    _put(storage, key, b"z" * 2048)
    time.sleep(1.1)  # S3 listings give whole seconds; the command runs with no grace
    yield key


def test_gc_command_dry_run_prints_what_it_would_remove(
    world: World, storage: Storage, orphan: str
) -> None:
    before = _keys(storage)
    done = _gc(service_env(world), "--dry-run", "--grace-hours", "0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"would remove object {orphan}  2.0 KiB  0m ")
    assert lines[-1].startswith("Would remove 1 unreferenced object(s) (2.0 KiB)")
    assert "0 error(s)" in lines[-1]
    assert _keys(storage) == before

    # the default grace (a day) keeps the fresh orphan
    done = _gc(service_env(world))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [done.stdout.strip()]
    assert done.stdout.startswith("Removed 0 unreferenced object(s)")
    assert orphan in _keys(storage)

    done = _gc(service_env(world), "--grace-hours", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"removed object {orphan}  2.0 KiB")
    assert _keys(storage) == before - {orphan}


def test_gc_command_exits_1_on_errors(world: World) -> None:
    env = service_env(
        world,
        HOSTIMAGE_STORAGE_URL="s3://bucket/prefix",
        HOSTIMAGE_S3_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
        HOSTIMAGE_S3_REGION="us-east-1",
        HOSTIMAGE_S3_ACCESS_KEY="k",
        HOSTIMAGE_S3_SECRET_KEY="s",
    )
    done = _gc(env, "--dry-run")
    assert done.returncode == 1
    assert "error: listing objects: " in done.stderr
    assert "2 error(s)" in done.stdout
