"""The worker side of F11: build a server's disks, deploy a fresh identity.

A run builds every disk under a name of its own and moves the files into place only inside a
write fenced by its claim: a run that lost its task never touches the server's disk files.
On a libvirt host the built disks are uploaded into volumes of the host's pool (named after
the server, so a retried run replaces what an earlier one left) and the domain is defined,
under the server's id as its UUID, inside the fenced write that marks the server ready.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from hostimage import crashpoints
from hostimage.compute.libvirt_host import LibvirtHost
from hostimage.compute.model import (
    ComputeError,
    DomainNotFound,
    DomainState,
    NewDomain,
    VolumeRef,
)
from hostimage.db.base import utcnow
from hostimage.db.models import Host, HostImage, Image, Server, ServerDisk, Task
from hostimage.db.queue import ClaimLost
from hostimage.domain.status import ServerStatus
from hostimage.errors import Conflict
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


@dataclass(frozen=True)
class LibvirtTarget:
    """Where a VM on a libvirt host goes."""

    uri: str
    pool: str
    network: str | None
    domain: NewDomain


def domain_uuid(server_id: str) -> str:
    """The UUID of the domain the service defines for a server: the server's own id."""
    return str(uuid.UUID(server_id))


def volume_name(server_id: str, index: int) -> str:
    """The name of a server's disk volume in its host's pool."""
    return f"hostimage-{server_id}-disk{index}.qcow2"


def _libvirt_target(session: Any, server: Server, payload: dict[str, Any]) -> LibvirtTarget | None:
    if server.host_id == "builtin":
        return None
    host = session.get(Host, server.host_id)
    if host is None:
        raise Conflict("The server's host is no longer registered.", code="unknown_host")
    hi = session.get(HostImage, server.host_image_id) if server.host_image_id else None
    spec = NewDomain(
        name=server.name,
        volumes=(),
        disk_bus=server.disk_driver or "virtio",
        nic_model=server.net_driver or "virtio",
        network=host.network,
        uefi=(hi.boot_mode if hi else None) == "uefi",
        vcpus=int(payload.get("vcpus") or 1),
        memory_mib=int(payload.get("memory_mb") or 1024),
        metadata={"server-id": server.id},
        uuid=domain_uuid(server.id),
    )
    return LibvirtTarget(host.uri, host.storage_pool, host.network, spec)


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
        target = _libvirt_target(session, server, payload)
    work = run.work
    work.mkdir(parents=True, exist_ok=True)
    if target is not None:
        # Built here, then uploaded into the host's pool.
        finals = []
        parts = [work / f"disk{d.idx}.qcow2" for d in disks]
    else:
        finals = [rt.disk_path(d.path or "") for d in disks]
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
        if target is not None:
            _publish(run, server_id, target, disks, parts, payload, deploy_report)
            return
        with run.write() as session:
            # Under the claim's lock: a run that lost its task never reaches this.
            for part, final in zip(parts, finals, strict=True):
                os.replace(part, final)
            crashpoints.reached("create.in_place")
            _set_status(session, run, server_id, ServerStatus.READY, None, deploy_report)
            server = session.get(Server, server_id)
            if payload.get("start") and server is not None:
                server.status = ServerStatus.RUNNING.value
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
        run.cleanup()


def _publish(
    run: TaskRun,
    server_id: str,
    target: LibvirtTarget,
    disks: list[ServerDisk],
    parts: list[Path],
    payload: dict[str, Any],
    deploy_report: dict[str, Any] | None,
) -> None:
    """Upload the built disks into volumes of the host's pool, define the domain (fenced by
    the claim) and start it when asked."""
    total = sum(p.stat().st_size for p in parts) or 1
    done = 0
    with LibvirtHost(target.uri) as host:
        refs: list[VolumeRef] = []
        for disk, part in zip(disks, parts, strict=True):
            run.check()
            name = volume_name(server_id, disk.idx)
            host.delete_volume(VolumeRef(target.pool, name, ""))  # what an earlier run left
            size = part.stat().st_size
            base = done

            def moved(f: float, base: int = base, size: int = size) -> None:
                run.progress(90 + 9 * (base + f * size) / total)

            refs.append(
                host.create_volume(
                    target.pool, name, part, "qcow2", check=run.check, progress=moved
                )
            )
            done += size
            part.unlink(missing_ok=True)
        crashpoints.reached("create.volumes_uploaded")
        spec = replace(target.domain, volumes=tuple(refs))
        with run.write() as session:
            # Under the claim's lock: a run that lost its task never defines the domain.
            assert spec.uuid is not None
            host.undefine(spec.uuid)  # an earlier run's definition
            info = host.define_domain(spec)
            server = session.get(Server, server_id)
            if server is None or server.status != ServerStatus.CREATING:
                host.undefine(info.uuid)
                raise ClaimLost(f"Server {server_id} is no longer being created.")
            server.external_id = info.uuid
            for row, ref, ddisk in zip(disks, refs, info.disks, strict=False):
                live = session.get(ServerDisk, row.id)
                if live is not None:
                    live.pool, live.volume, live.path = ref.pool, ref.name, ref.path
                    live.target = ddisk.target
            crashpoints.reached("create.defined")
            _set_status(session, run, server_id, ServerStatus.READY, None, deploy_report)
        if payload.get("start"):
            try:
                host.start(info.uuid)
            except ComputeError as exc:
                with run.write() as session:
                    server = session.get(Server, server_id)
                    if server is not None:
                        server.status_reason = f"Created, but starting it failed: {exc}"[:1024]
                return
            with run.write() as session:
                server = session.get(Server, server_id)
                if server is not None and server.status == ServerStatus.READY:
                    server.status, server.updated_at = ServerStatus.RUNNING.value, utcnow()


def remove_libvirt_vm(rt: Runtime, uri: str, domain: str | None, volumes: list[VolumeRef]) -> None:
    """Undefine a domain the service defined and delete the volumes it created (stopping the
    domain first if it runs); what is already gone is fine."""
    with LibvirtHost(uri) as host:
        if domain:
            # A build that failed before defining it, or a domain undefined by hand: gone.
            with contextlib.suppress(DomainNotFound):
                host.stop(domain, timeout=rt.shutdown_seconds)
            host.undefine(domain)
        for ref in volumes:
            host.delete_volume(ref)


def _network(body: dict[str, Any] | None) -> StaticNetwork | None:
    if not body:
        return None
    return StaticNetwork(body["address"], body.get("gateway"), tuple(body.get("dns") or ()))


def fail_create(run: TaskRun, server_id: str, reason: str) -> None:
    """Mark the server ``failed`` with ``reason`` and remove its disk files (on a libvirt
    host: the domain and volumes its runs made)."""
    with run.rt.factory() as session:
        server = session.get(Server, server_id)
        host = session.get(Host, server.host_id) if server is not None else None
        indexes = list(
            session.scalars(select(ServerDisk.idx).where(ServerDisk.server_id == server_id))
        )
    if host is not None:
        refs = [VolumeRef(host.storage_pool, volume_name(server_id, i), "") for i in indexes]
        try:
            remove_libvirt_vm(run.rt, host.uri, domain_uuid(server_id), refs)
        except ComputeError as exc:
            # The server still ends failed; deleting it retries until the host answers.
            reason = (
                f"{reason} (what the build made on the host is removed when the server is "
                f"deleted: {exc})"
            )
    with run.write() as session:
        rels = (
            []
            if host is not None
            else list(
                session.scalars(select(ServerDisk.path).where(ServerDisk.server_id == server_id))
            )
        )
        for rel in rels:
            if rel is None:
                continue
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


def run_power(run: TaskRun, server_id: str, start: bool) -> None:
    """Start a libvirt server's domain, or shut it down gracefully (destroyed after
    the runtime's ``shutdown_seconds``); the server then shows the domain's state."""
    with run.rt.factory() as session:
        server = session.get(Server, server_id)
        host = session.get(Host, server.host_id) if server is not None else None
        if server is None or host is None or not server.external_id:
            return
        uri, domain = host.uri, server.external_id
    state: DomainState | None
    with LibvirtHost(uri) as conn:
        try:
            if start:
                conn.start(domain)
            else:
                conn.stop(domain, timeout=run.rt.shutdown_seconds)
            state = conn.domain(domain).state
        except DomainNotFound:
            state = None
    with run.write() as session:
        server = session.get(Server, server_id)
        if server is None or server.status not in (ServerStatus.READY, ServerStatus.RUNNING):
            return
        if state is None:
            server.status, server.updated_at = ServerStatus.MISSING.value, utcnow()
            server.status_reason = "The domain is no longer defined on its host."
            return
        want = ServerStatus.READY if state == DomainState.SHUTOFF else ServerStatus.RUNNING
        if server.status != want:
            old = server.status
            server.status, server.status_reason, server.updated_at = want.value, None, utcnow()
            oplog.record(
                session,
                None,
                of_server(server),
                "update",
                notes={"changes": {"status": [old, want.value]}},
            )
