"""The worker side of F11: build a server's disk files, deploy a fresh identity."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from typing import Any

from sqlalchemy import select, update

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Image, Server, ServerDisk, Task
from hostimage.imaging import guestfs, qemu_img
from hostimage.imaging.inspector import inspect
from hostimage.services import oplog
from hostimage.services.blobs import fetch_verified
from hostimage.services.runtime import Runtime, report_progress
from hostimage.services.servers import of_server


def run_create_server(rt: Runtime, task_id: str, server_id: str, payload: dict[str, Any]) -> None:
    """Create every disk file (blank, or converted from a verified image), then deploy the
    new identity on the system disk. Failure marks the server ``failed`` and removes its
    partial disk files."""
    with rt.factory() as session:
        server = session.get(Server, server_id)
        if server is None or server.status != "creating":
            return
        disks = sorted(
            session.scalars(select(ServerDisk).where(ServerDisk.server_id == server_id)),
            key=lambda d: d.idx,
        )
        images = {
            i.id: i
            for i in session.scalars(
                select(Image).where(
                    Image.id.in_([d.source_image_id for d in disks if d.source_image_id])
                )
            )
        }
        hostname, login_user = server.hostname or server.name, server.login_user
    work = rt.work_dir / task_id
    shutil.rmtree(work, ignore_errors=True)
    paths = [rt.disk_path(d.path) for d in disks]
    deploy_report: dict[str, Any] | None = None
    try:
        for n, (disk, path) in enumerate(zip(disks, paths, strict=True)):
            path.parent.mkdir(parents=True, exist_ok=True)
            img = images.get(disk.source_image_id or "")
            if img is None:
                qemu_img.create(path, "qcow2", disk.size)
            else:
                if not img.object_key:
                    raise RuntimeError(f"Image {img.id} has no stored data.")
                local = work / f"src{disk.idx}"
                fetch_verified(rt.storage, img.object_key, local, img.checksum)
                inspect(local, img.disk_format)
                qemu_img.convert(local, img.disk_format, path, "qcow2", limits=rt.qemu_limits)
                local.unlink(missing_ok=True)
            report_progress(rt.factory, task_id, 90 * (n + 1) / len(disks))
        if payload.get("deploy_identity") and disks and disks[0].source_image_id:
            report = guestfs.deploy_identity(
                paths[0],
                "qcow2",
                hostname=hostname,
                machine_id=uuid.uuid4().hex,
                login_user=login_user or "root",
                password_hash=payload.get("password_hash"),
                ssh_public_key=payload.get("ssh_public_key"),
            )
            deploy_report = {k: v for k, v in vars(report).items()}
    except Exception as exc:
        fail_create(rt, task_id, server_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _set_status(rt, task_id, server_id, "ready", None, deploy_report)


def fail_create(rt: Runtime, task_id: str, server_id: str, reason: str) -> None:
    """Mark the server ``failed`` with ``reason`` and remove its partial disk files."""
    with rt.factory() as session:
        rels = list(
            session.scalars(select(ServerDisk.path).where(ServerDisk.server_id == server_id))
        )
    for rel in rels:
        rt.disk_path(rel).unlink(missing_ok=True)
    _set_status(rt, task_id, server_id, "failed", reason, None)


def _set_status(
    rt: Runtime,
    task_id: str,
    server_id: str,
    status: str,
    reason: str | None,
    deployed: dict[str, Any] | None,
) -> None:
    with rt.factory() as session:
        begin_write(session)
        server = session.get(Server, server_id)
        if server is not None:
            server.status, server.status_reason, server.updated_at = status, reason, utcnow()
            notes: dict[str, Any] = {"stage": "done" if status == "ready" else "failed"}
            if reason:
                notes["error"] = reason
            if deployed:
                notes["identity"] = deployed
            oplog.record(
                session, None, of_server(server), "create", success=status == "ready", notes=notes
            )
        # Secrets are needed only until the identity is deployed.
        session.execute(update(Task).where(Task.id == task_id).values(payload={}))
        session.commit()


def delete_disk_files(rt: Runtime, paths: list[str]) -> None:
    """Remove a deleted server's disk files (idempotent)."""
    for rel in paths:
        path = rt.disk_path(rel)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()
