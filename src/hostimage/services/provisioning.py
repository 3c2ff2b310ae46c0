"""The worker side of F11: build a server's disk files, deploy a fresh identity.

A run builds every disk under a name of its own and moves the files into place only inside a
write fenced by its claim: a run that lost its task never touches the server's disk files.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from hostimage import crashpoints
from hostimage.db.base import utcnow
from hostimage.db.models import Image, Server, ServerDisk, Task
from hostimage.db.queue import ClaimLost
from hostimage.domain.status import ServerStatus
from hostimage.imaging import guestfs, qemu_img
from hostimage.imaging.inspector import inspect
from hostimage.imaging.netconfig import StaticNetwork
from hostimage.services import oplog
from hostimage.services.blobs import fetch_verified
from hostimage.services.limits import ensure_room
from hostimage.services.runtime import Runtime, TaskRun
from hostimage.services.servers import of_server


def _partial(path: Path, run: TaskRun) -> Path:
    return path.with_name(f"{path.name}.{run.claim.short}.part")


def run_create_server(run: TaskRun, server_id: str, payload: dict[str, Any]) -> None:
    """Create every disk file (blank, or converted from a verified image), then deploy the
    new identity on the system disk, then move the files into place. A failure propagates:
    the worker retries transient ones, and on giving up :func:`fail_create` marks the server
    ``failed`` and removes its disk files."""
    rt = run.rt
    with run.write() as session:
        server = session.get(Server, server_id)
        if server is None or server.status != ServerStatus.CREATING:
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
    work = run.work
    work.mkdir(parents=True, exist_ok=True)
    finals = [rt.disk_path(d.path) for d in disks]
    parts = [_partial(p, run) for p in finals]
    for final in finals:
        # What earlier runs of this task left: they no longer hold it, so they can no
        # longer move a file into place.
        for stray in final.parent.glob(f"{final.name}.*.part"):
            stray.unlink(missing_ok=True)
    deploy_report: dict[str, Any] | None = None
    try:
        for n, (disk, part) in enumerate(zip(disks, parts, strict=True)):
            run.check()
            part.parent.mkdir(parents=True, exist_ok=True)
            img = images.get(disk.source_image_id or "")
            if img is None:
                qemu_img.create(part, "qcow2", disk.size)
            else:
                if not img.object_key:
                    raise RuntimeError(f"Image {img.id} has no stored data.")
                ensure_room(work, img.size, f"Fetching image {img.name}")
                local = work / f"src{disk.idx}"
                fetch_verified(rt.storage, img.object_key, local, img.checksum)
                inspect(local, img.disk_format)
                needed = qemu_img.measure(local, img.disk_format, "qcow2", limits=rt.qemu_limits)
                ensure_room(part.parent, needed, f"Disk {disk.idx}")
                qemu_img.convert(
                    local,
                    img.disk_format,
                    part,
                    "qcow2",
                    progress=lambda _pct: run.check(),
                    limits=rt.qemu_limits,
                )
                local.unlink(missing_ok=True)
            run.progress(90 * (n + 1) / len(disks))
        crashpoints.reached("create.disks_built")
        if payload.get("deploy_identity") and disks and disks[0].source_image_id:
            report = guestfs.deploy_identity(
                parts[0],
                "qcow2",
                hostname=hostname,
                machine_id=uuid.uuid4().hex,
                login_user=login_user or "root",
                password_hash=payload.get("password_hash"),
                ssh_public_key=payload.get("ssh_public_key"),
                network=_network(payload.get("network")),
            )
            deploy_report = asdict(report)
        with run.write() as session:
            # Under the claim's lock: a run that lost its task never reaches this.
            for part, final in zip(parts, finals, strict=True):
                os.replace(part, final)
            crashpoints.reached("create.in_place")
            _set_status(session, run, server_id, ServerStatus.READY, None, deploy_report)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
        run.cleanup()


def _network(body: dict[str, Any] | None) -> StaticNetwork | None:
    if not body:
        return None
    return StaticNetwork(body["address"], body.get("gateway"), tuple(body.get("dns") or ()))


def fail_create(run: TaskRun, server_id: str, reason: str) -> None:
    """Mark the server ``failed`` with ``reason`` and remove its disk files."""
    with run.write() as session:
        rels = list(
            session.scalars(select(ServerDisk.path).where(ServerDisk.server_id == server_id))
        )
        for rel in rels:
            path = run.rt.disk_path(rel)
            path.unlink(missing_ok=True)
            for stray in path.parent.glob(f"{path.name}.*.part"):
                stray.unlink(missing_ok=True)
        _set_status(session, run, server_id, ServerStatus.FAILED, reason, None)


def _set_status(
    session: Any,
    run: TaskRun,
    server_id: str,
    status: ServerStatus,
    reason: str | None,
    deployed: dict[str, Any] | None,
) -> None:
    server = session.get(Server, server_id)
    if server is not None and server.status != ServerStatus.CREATING:
        if status == ServerStatus.READY:
            raise ClaimLost(f"Server {server_id} is no longer being created.")
        return
    if server is not None:
        server.status, server.status_reason, server.updated_at = status.value, reason, utcnow()
        notes: dict[str, Any] = {"stage": "done" if status == ServerStatus.READY else "failed"}
        if reason:
            notes["error"] = reason
        if deployed:
            notes["identity"] = deployed
        oplog.record(
            session,
            None,
            of_server(server),
            "create",
            success=status == ServerStatus.READY,
            notes=notes,
        )
    # Secrets are needed only until the identity is deployed.
    session.execute(update(Task).where(Task.id == run.task_id).values(payload={}))


def delete_disk_files(rt: Runtime, paths: list[str]) -> None:
    """Remove a deleted server's disk files, and what unfinished builds left (idempotent)."""
    for rel in paths:
        path = rt.disk_path(rel)
        path.unlink(missing_ok=True)
        for stray in path.parent.glob(f"{path.name}.*.part"):
            stray.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()
