"""The worker side of F1: save every disk of a stopped server as a sub-image.

For each disk, in parallel: (libvirt: fetch its volume, and its backing chain, through
storage-volume streams) → inspect → (system disk: copy and clean identity) → compressed qcow2
(zstd) → inspect the output → store while hashing → mark the sub-image active. The server's own
disks are only ever read. Every write is fenced by the task's claim, and
each run stores under names of its own: a run that lost its task leaves nothing behind.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hostimage import crashpoints
from hostimage.compute.libvirt_host import LibvirtHost
from hostimage.compute.model import DomainDisk, DomainState
from hostimage.db.base import utcnow
from hostimage.db.models import Host, HostImage, Image, Server, ServerDisk
from hostimage.db.queue import ClaimLost, enqueue
from hostimage.domain.status import ImageStatus, ServerStatus
from hostimage.errors import Conflict
from hostimage.imaging import ext4fast, guestfs, qemu_img
from hostimage.imaging.inspector import inspect
from hostimage.services import oplog
from hostimage.services.blobs import store_file
from hostimage.services.host_images.common import refresh_derived
from hostimage.services.limits import ImageLimits, ensure_room, image_limits
from hostimage.services.runtime import TaskRun
from hostimage.services.servers import POWER_TASK
from hostimage.services.settings import get_settings


@dataclass(frozen=True)
class DiskJob:
    sub_id: str
    index: int
    source: Path | None  # a built-in disk file; None when ``remote`` is fetched first
    weight: float
    remote: DomainDisk | None = None
    fmt: str = "qcow2"


# Of a libvirt disk's progress, the share taken by fetching it through the volume stream.
FETCH_SHARE = 0.4


class _Progress:
    """Combines per-disk percentages into one task percentage (weighted by disk size)."""

    def __init__(self, run: TaskRun, jobs: list[DiskJob]) -> None:
        self._run = run
        self._done = {j.index: 0.0 for j in jobs}
        self._weights = {j.index: j.weight for j in jobs}
        self._lock = threading.Lock()
        self._last = -1

    def update(self, index: int, pct: float) -> None:
        self._run.check()
        with self._lock:
            self._done[index] = pct
            total = sum(self._done[i] * self._weights[i] for i in self._done)
            whole = int(total * 95)  # fractions → percent; the last 5 % are bookkeeping
            if whole <= self._last:
                return
            self._last = whole
        self._run.progress(whole)


def object_key(host_image_id: str, sub_id: str, run: TaskRun) -> str:
    """Where a run stores a sub-image: a name of its own, so two runs never share one."""
    return f"host-images/{host_image_id}/{sub_id}-{run.claim.short}.qcow2"


@dataclass(frozen=True)
class Plan:
    jobs: list[DiskJob]
    uri: str | None  # the server's libvirt host, None for the built-in inventory
    host_name: str
    domain_uuid: str | None
    disk_count: int


def _prepare(run: TaskRun, host_image_id: str, server_id: str) -> Plan | None:
    with run.write() as session:
        hi = session.get(HostImage, host_image_id)
        if hi is None or hi.status in (ImageStatus.DELETING, ImageStatus.KILLED):
            server = session.get(Server, server_id)
            if server is not None and server.status == ServerStatus.SAVING:
                server.status = ServerStatus.READY.value  # nothing left to save
            return None
        subs = {
            s.idx: s for s in session.scalars(select(Image).where(Image.host_image_id == hi.id))
        }
        server = session.get(Server, server_id)
        host = session.get(Host, server.host_id) if server is not None else None
        if server is not None and server.host_id != "builtin" and host is None:
            raise Conflict("The server's host is no longer registered.", code="unknown_host")
        disks = list(session.scalars(select(ServerDisk).where(ServerDisk.server_id == server_id)))
        total = sum(d.size for d in disks) or 1
        jobs = []
        for d in sorted(disks, key=lambda d: d.idx):
            sub = subs[d.idx]
            if sub.status == ImageStatus.ACTIVE:
                continue  # done by an earlier attempt
            sub.status, sub.updated_at = ImageStatus.SAVING.value, utcnow()
            local = run.rt.disk_path(d.path) if host is None and d.path else None
            jobs.append(DiskJob(sub.id, d.idx, local, d.size / total))
        refresh_derived(hi, list(subs.values()))
        return Plan(
            jobs,
            host.uri if host else None,
            host.name if host else "builtin",
            server.external_id if server else None,
            len(disks),
        )


def _fetch(run: TaskRun, host: LibvirtHost, job: DiskJob, progress: _Progress) -> Local:
    """The disk's bytes (and its backing chain's), through the host's volume streams, in
    this run's own directory; the host's volumes are only read."""
    assert job.remote is not None
    run.check()
    fetched, fmt = host.fetch_disk(
        job.remote,
        _work(run, job) / "fetched",
        check=run.check,
        progress=lambda f: progress.update(job.index, f * FETCH_SHARE),
    )
    return Local(fetched, fmt, FETCH_SHARE, private=True)


@dataclass(frozen=True)
class Local:
    """A disk's bytes on this machine: the built-in file, or what was fetched from a host
    (``private``: this run's own copy), and the share of the disk's progress already done."""

    path: Path
    fmt: str
    done: float = 0.0
    private: bool = False


def _work(run: TaskRun, job: DiskJob) -> Path:
    work = run.work / f"disk{job.index}"
    work.mkdir(parents=True, exist_ok=True)
    return work


def _save_disk(
    run: TaskRun,
    host_image_id: str,
    job: DiskJob,
    local: Local,
    limits: ImageLimits,
    progress: _Progress,
) -> dict[str, Any]:
    rt = run.rt
    run.check()
    work = _work(run, job)
    fetched, fmt, share = local.path, local.fmt, local.done
    source_info = inspect(fetched, fmt)
    limits.check_virtual_size(source_info.virtual_size or 0, f"Disk {job.index}")
    # Room for the compressed output (at most what qemu-img measures), and for the system
    # disk also the private raw copy that is cleaned.
    needed = qemu_img.measure(fetched, fmt, "qcow2", limits=rt.qemu_limits)
    if job.index == 0:
        needed += qemu_img.measure(fetched, fmt, "raw", limits=rt.qemu_limits)
    ensure_room(work, needed, f"Saving disk {job.index}")
    source, notes = fetched, {}
    source_fmt = fmt
    if job.index == 0:
        # Identity is cleaned on a private raw copy: the server's own disk is never written.
        # ext file systems are edited directly; anything else goes through libguestfs.
        if local.private and fmt == "raw":
            copy = fetched  # already this run's own raw copy
        else:
            copy = work / "system-copy.raw"
            qemu_img.convert(fetched, fmt, copy, "raw", limits=rt.qemu_limits)
            if local.private:
                fetched.unlink(missing_ok=True)  # the copy is all that is read from here on
        run.check()
        report = ext4fast.clean_identity(copy) or guestfs.clean_identity(copy, "raw")
        notes["cleaned"] = asdict(report)
        source, source_fmt = copy, "raw"
    out = work / "out.qcow2"
    qemu_img.convert(
        source,
        source_fmt,
        out,
        "qcow2",
        compress=True,
        options={"compression_type": "zstd"},
        progress=lambda pct: progress.update(job.index, share + (1 - share) * pct / 100),
        limits=rt.qemu_limits,
    )
    info = inspect(out, "qcow2")
    run.check()
    crashpoints.reached("save.converted")
    stored = store_file(rt.storage, object_key(host_image_id, job.sub_id, run), out)
    crashpoints.reached("save.published")
    try:
        with run.write() as session:
            sub = session.get(Image, job.sub_id)
            if sub is None or sub.status != ImageStatus.SAVING:
                raise ClaimLost(f"Sub-image {job.sub_id} is no longer being saved.")
            sub.status, sub.size, sub.checksum = (
                ImageStatus.ACTIVE.value,
                stored.size,
                stored.checksum,
            )
            sub.virtual_size = info.virtual_size or sub.virtual_size
            sub.object_key, sub.updated_at = stored.key, utcnow()
            oplog.record(
                session,
                None,
                oplog.of_image(sub),
                "save",
                notes={"size": stored.size, "checksum": stored.checksum, **notes},
            )
    except ClaimLost:
        rt.storage.delete(stored.key)  # never referenced: this run may not publish it
        raise
    crashpoints.reached("save.disk_saved")
    return notes


def run_save(run: TaskRun, host_image_id: str, server_id: str, auto_start: bool) -> None:
    """Save the server's disks into the host image's sub-images. A failure propagates: the
    worker retries transient ones, and on giving up :func:`fail_save` kills the host image."""
    plan = _prepare(run, host_image_id, server_id)
    if plan is None:
        return
    crashpoints.reached("save.prepared")
    with run.rt.factory() as session:
        limits = image_limits(session)
    if plan.uri is None:
        results = _save_all(run, host_image_id, plan.jobs, limits, None)
    else:
        with LibvirtHost(plan.uri) as host:
            jobs = _remote_jobs(host, plan)
            results = _save_all(run, host_image_id, jobs, limits, host)
    cleaned = next((r["cleaned"] for r in results if "cleaned" in r), None)
    _finish(run, host_image_id, server_id, auto_start, cleaned)


def _remote_jobs(host: LibvirtHost, plan: Plan) -> list[DiskJob]:
    """The plan's jobs with the domain's disks as they are now; the domain must be shut off
    and still have the disks the save was asked for."""
    assert plan.domain_uuid is not None
    dom = host.domain(plan.domain_uuid)
    if dom.state != DomainState.SHUTOFF:
        raise Conflict(
            f"Domain {dom.name} on host {plan.host_name} was started; shut it off and save again.",
            code="server_not_stopped",
        )
    if len(dom.disks) != plan.disk_count:
        raise Conflict(
            f"Domain {dom.name} has {len(dom.disks)} disk(s) now, {plan.disk_count} when the "
            "save was asked for; sync the host and save again.",
            code="disks_changed",
        )
    return [
        DiskJob(j.sub_id, j.index, None, j.weight, remote=dom.disks[j.index]) for j in plan.jobs
    ]


def _save_all(
    run: TaskRun,
    host_image_id: str,
    jobs: list[DiskJob],
    limits: ImageLimits,
    host: LibvirtHost | None,
) -> list[dict[str, Any]]:
    progress = _Progress(run, jobs)
    with ThreadPoolExecutor(max_workers=max(1, run.rt.parallelism)) as pool:
        if host is None:
            return list(
                pool.map(
                    lambda j: _save_disk(
                        run, host_image_id, j, Local(j.source or Path(), j.fmt), limits, progress
                    ),
                    jobs,
                )
            )
        # The system disk, which has the longest way to go (a raw copy, identity cleaning,
        # compression), is fetched first and alone; the others are fetched while it is
        # worked on, each over a connection of its own.
        if not jobs:
            return []
        first, rest = jobs[0], jobs[1:]
        local = _fetch(run, host, first, progress)
        pending = [pool.submit(_save_disk, run, host_image_id, first, local, limits, progress)]
        pending += [
            pool.submit(_fetch_and_save, run, host.uri, host_image_id, job, limits, progress)
            for job in rest
        ]
        return [f.result() for f in pending]


def _fetch_and_save(
    run: TaskRun,
    uri: str,
    host_image_id: str,
    job: DiskJob,
    limits: ImageLimits,
    progress: _Progress,
) -> dict[str, Any]:
    with LibvirtHost(uri) as host:
        local = _fetch(run, host, job, progress)
    return _save_disk(run, host_image_id, job, local, limits, progress)


def _finish(
    run: TaskRun,
    host_image_id: str,
    server_id: str,
    auto_start: bool,
    cleaned: dict[str, Any] | None,
) -> None:
    with run.write() as session:
        hi = session.get(HostImage, host_image_id)
        server = session.get(Server, server_id)
        assert hi is not None
        subs = list(session.scalars(select(Image).where(Image.host_image_id == hi.id)))
        refresh_derived(hi, subs)
        hi.updated_at = utcnow()
        if server is not None and server.status == ServerStatus.SAVING:
            on_host = server.host_id != "builtin"
            server.status = (
                ServerStatus.RUNNING if auto_start and not on_host else ServerStatus.READY
            ).value
            if auto_start and on_host:
                # A libvirt domain is started by the power task, which then shows it running.
                enqueue(
                    session,
                    POWER_TASK,
                    "server",
                    server.id,
                    project_id=server.project_id,
                    payload={"start": True},
                )
        oplog.record(
            session,
            None,
            oplog.of_host_image(hi),
            "save",
            notes={"stage": "done", "size": hi.size, "cleaned": cleaned, "auto_start": auto_start},
        )
        for fmt in get_settings(session)["target_formats"]:
            if fmt != "qcow2":
                enqueue(
                    session,
                    "convert",
                    "host_image",
                    hi.id,
                    project_id=hi.project_id,
                    payload={"format": fmt},
                )


def fail_save(run: TaskRun, host_image_id: str, server_id: str | None, reason: str) -> None:
    """Kill the host image with ``reason``, delete whatever it stored, free the server."""
    with run.write() as session:
        hi = session.get(HostImage, host_image_id)
        if hi is None:
            return
        subs = list(session.scalars(select(Image).where(Image.host_image_id == hi.id)))
        for sub in subs:
            if sub.object_key:
                run.rt.storage.delete(sub.object_key)
            if sub.status != ImageStatus.DELETING:
                sub.status, sub.status_reason = ImageStatus.KILLED.value, reason
                sub.object_key, sub.checksum, sub.size = None, None, 0
                sub.updated_at = utcnow()
        refresh_derived(hi, subs)
        hi.status_reason = reason
        if server_id:
            server = session.get(Server, server_id)
            if server is not None and server.status == ServerStatus.SAVING:
                server.status = ServerStatus.READY.value
        oplog.record(
            session, None, oplog.of_host_image(hi), "save", success=False, notes={"error": reason}
        )
