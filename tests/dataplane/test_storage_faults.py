"""Storage faults, on both databases: the S3 endpoint down during upload, delete and convert
(the S3-protocol test server cut off behind a TCP forwarder), and a file system that is full
(a small tmpfs mounted for the test). Each gives a clear error, leaves nothing active that is
partial, and the operation succeeds once the fault clears."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hostimage.api.app import create_app
from hostimage.db.engine import session_scope
from hostimage.services.bootstrap import bootstrap
from hostimage.settings import load_settings
from hostimage.tasks.worker import Worker
from hostimage.tasks.worker.retry import RetryPolicy
from tests.api.conftest import ADMIN_PASSWORD, World, _base_world, make_worker
from tests.conftest import wipe
from tests.dataplane.consistency import assert_consistent
from tests.imaging.diskfactory import build_data_disk
from tests.s3_peer import S3Server
from tests.tcp_proxy import TcpProxy

MiB = 1024 * 1024


@pytest.fixture()
def proxy(s3_server: S3Server) -> Iterator[TcpProxy]:
    p = TcpProxy(s3_server.endpoint)
    yield p
    p.close()


def _world(database: tuple[str, Engine], data_dir: Path, **settings: Any) -> Iterator[World]:
    url, engine = database
    wipe(engine)
    app = create_app(
        load_settings(
            data_dir=data_dir, database_url=url, admin_password=ADMIN_PASSWORD, **settings
        ),
        engine=engine,
    )
    with session_scope(app.state.session_factory) as s:
        bootstrap(s, ADMIN_PASSWORD)
    with TestClient(app) as client:
        world = _base_world(client, (app, engine))
        world.worker = make_worker(app, engine)
        for name in ("p0a",):
            r = world.admin.post("/projects", {"name": name, "domain_id": world.domains["Default"]})
            world.projects[name] = r.json()["id"]
        yield world


@pytest.fixture()
def s3_world(
    database: tuple[str, Engine], data_dir: Path, s3_server: S3Server, proxy: TcpProxy
) -> Iterator[World]:
    """The service on S3 storage reached through ``proxy``."""
    yield from _world(
        database,
        data_dir,
        storage_url=f"s3://{s3_server.bucket}/{s3_server.run_prefix}/faults-{uuid.uuid4().hex[:8]}",
        s3_endpoint=proxy.endpoint,
        s3_region=s3_server.region,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
    )


class SmallFs:
    """A tmpfs mounted for the test; ``resize`` is the fault clearing."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        path.mkdir(parents=True)
        if os.geteuid() != 0:
            if os.environ.get("CI"):
                pytest.fail("the ENOSPC tests mount a tmpfs and need root")
            pytest.skip("the ENOSPC tests mount a tmpfs and need root")
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=True
        )

    def resize(self, size_mb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size_mb}m", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture()
def small_fs(tmp_path: Path) -> Iterator[SmallFs]:
    fs = SmallFs(tmp_path / "small", 40)
    yield fs
    fs.unmount()


def _drain(world: World) -> None:
    Worker(world.worker.rt, policy=RetryPolicy(base=timedelta(0))).drain()


def _random(tmp_path: Path, size: int) -> bytes:
    return build_data_disk(tmp_path / f"r{size}.raw", "random", size).read_bytes()


def _create(world: World, name: str) -> str:
    r = world.admin.post(
        "/images", {"name": name, "disk_format": "raw", "project_id": world.projects["p0a"]}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _host_image(world: World, tmp_path: Path, name: str) -> str:
    ids = [
        world.upload(world.admin, f"{name}-{i}", _random(tmp_path, 4 * MiB), project="p0a")["id"]
        for i in range(2)
    ]
    r = world.admin.post(
        "/host-images",
        {"name": name, "image_ids": ids, "project_id": world.projects["p0a"], "protected": False},
    )
    assert r.status_code == 201, r.text
    # The sources go: the host image's sub-images are then the only rows on the data.
    for image_id in ids:
        assert world.admin.delete(f"/images/{image_id}").status_code == 202
    _drain(world)
    return str(r.json()["id"])


# ------------------------------------------------------------------------- S3 endpoint down


def test_upload_while_s3_is_down(s3_world: World, proxy: TcpProxy, tmp_path: Path) -> None:
    world = s3_world
    data = _random(tmp_path, 20 * MiB)  # more than one 16 MiB part
    iid = _create(world, "s3-down-upload")
    proxy.down()
    r = world.admin.put(f"/images/{iid}/data", content=data)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "storage_unavailable"
    img = world.admin.get(f"/images/{iid}").json()
    assert img["status"] == "killed" and "storage" in img["status_reason"].lower()
    proxy.up()
    assert_consistent(world)
    r = world.admin.put(f"/images/{iid}/data", content=data)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["size"] == len(data)
    assert_consistent(world)


def test_delete_while_s3_is_down_retries_until_it_answers(
    s3_world: World, proxy: TcpProxy, tmp_path: Path
) -> None:
    world = s3_world
    hid = _host_image(world, tmp_path, "s3-down-delete")
    task_id = world.admin.delete(f"/host-images/{hid}").json()["task_id"]
    proxy.down()
    Worker(world.worker.rt, policy=RetryPolicy(base=timedelta(0))).run_once()
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "queued" and task["error"], task
    hi = world.admin.get(f"/host-images/{hid}").json()
    assert hi["status"] == "deleting" and "retrying" in hi["status_reason"], hi
    # deletions never give up: more failures only wait longer
    for _ in range(6):
        Worker(world.worker.rt, policy=RetryPolicy(max_attempts=2, base=timedelta(0))).run_once()
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "queued" and task["attempts"] == 7, task
    proxy.up()
    _drain(world)
    assert world.admin.get(f"/tasks/{task_id}").json()["status"] == "succeeded"
    assert world.admin.get(f"/host-images/{hid}").status_code == 404
    assert_consistent(world)


def test_convert_while_s3_is_down_is_retried(
    s3_world: World, proxy: TcpProxy, tmp_path: Path
) -> None:
    world = s3_world
    hid = _host_image(world, tmp_path, "s3-down-convert")
    task_id = world.admin.post(f"/host-images/{hid}/formats", {"format": "vmdk"}).json()["task_id"]
    proxy.down()
    Worker(world.worker.rt, policy=RetryPolicy(base=timedelta(0))).run_once()
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "queued" and task["attempts"] == 1 and task["error"], task
    fmts = world.admin.get(f"/host-images/{hid}/formats").json()["items"]
    assert not any(f["status"] == "active" for f in fmts if f["format"] == "vmdk")
    proxy.up()
    _drain(world)
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "succeeded" and task["attempts"] == 2, task
    fmts = world.admin.get(f"/host-images/{hid}/formats").json()["items"]
    assert [f["status"] for f in fmts if f["format"] == "vmdk"] == ["active", "active"]
    assert_consistent(world)


def test_convert_given_up_while_s3_stays_down(
    s3_world: World, proxy: TcpProxy, tmp_path: Path
) -> None:
    world = s3_world
    hid = _host_image(world, tmp_path, "s3-gone-convert")
    task_id = world.admin.post(f"/host-images/{hid}/formats", {"format": "qcow2"}).json()["task_id"]
    proxy.down()
    Worker(world.worker.rt, policy=RetryPolicy(max_attempts=2, base=timedelta(0))).drain()
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "failed" and task["attempts"] == 2, task
    fmts = world.admin.get(f"/host-images/{hid}/formats").json()["items"]
    raw = [f for f in fmts if f["format"] == "qcow2"]
    assert raw and all(f["status"] == "failed" and f["error"] for f in raw), raw
    proxy.up()
    assert_consistent(world)
    # asked again once the storage answers
    world.admin.post(f"/host-images/{hid}/formats", {"format": "qcow2"})
    _drain(world)
    fmts = world.admin.get(f"/host-images/{hid}/formats").json()["items"]
    assert [f["status"] for f in fmts if f["format"] == "qcow2"] == ["active", "active"]
    assert_consistent(world)


# ----------------------------------------------------------------------------- disk full


@pytest.fixture()
def full_world(database: tuple[str, Engine], data_dir: Path, small_fs: SmallFs) -> Iterator[World]:
    """The service with its object store and scratch space on a 40 MiB file system."""
    yield from _world(
        database,
        data_dir,
        storage_url=f"file://{small_fs.path / 'objects'}",
        work_dir=small_fs.path / "work",
    )


def test_upload_into_a_full_file_system(
    full_world: World, small_fs: SmallFs, tmp_path: Path
) -> None:
    world = full_world
    data = _random(tmp_path, 48 * MiB)
    iid = _create(world, "enospc-upload")
    r = world.admin.put(f"/images/{iid}/data", content=data)
    assert r.status_code == 507, r.text
    assert r.json()["code"] == "insufficient_storage"
    img = world.admin.get(f"/images/{iid}").json()
    assert img["status"] == "killed" and "space" in img["status_reason"]
    assert not any((small_fs.path / "objects" / ".tmp").iterdir()), "a partial write was left"
    assert_consistent(world)
    small_fs.resize(256)
    r = world.admin.put(f"/images/{iid}/data", content=data)
    assert r.status_code == 200, r.text
    assert_consistent(world)


def test_conversion_without_room_fails_first(
    full_world: World, small_fs: SmallFs, tmp_path: Path
) -> None:
    """A raw copy as large as the virtual disk does not fit: the room check fails the copy
    with insufficient_storage before anything is written."""
    world = full_world
    sparse = tmp_path / "sparse.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(sparse), "512M"], check=True)
    r = world.admin.post(
        "/images",
        {"name": "big-q", "disk_format": "qcow2", "project_id": world.projects["p0a"]},
    )
    qid = r.json()["id"]
    r = world.admin.put(f"/images/{qid}/data", content=sparse.read_bytes())
    assert r.status_code == 200, r.text
    r = world.admin.post(
        "/host-images",
        {"name": "big-hi", "image_ids": [qid], "project_id": world.projects["p0a"]},
    )
    hid = r.json()["id"]
    task_id = world.admin.post(f"/host-images/{hid}/formats", {"format": "raw"}).json()["task_id"]
    _drain(world)
    task = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "failed" and "insufficient_storage" in task["error"], task
    (copy,) = [
        f
        for f in world.admin.get(f"/host-images/{hid}/formats").json()["items"]
        if f["format"] == "raw"
    ]
    assert copy["status"] == "failed" and "insufficient_storage" in copy["error"]
    assert_consistent(world)
    small_fs.resize(1000)
    world.admin.post(f"/host-images/{hid}/formats", {"format": "raw"})
    _drain(world)
    (copy,) = [
        f
        for f in world.admin.get(f"/host-images/{hid}/formats").json()["items"]
        if f["format"] == "raw"
    ]
    assert copy["status"] == "active" and copy["size"] == 512 * MiB
    assert_consistent(world)
