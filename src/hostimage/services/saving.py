"""The worker side of F1: save every disk of a stopped server as a sub-image.

For each disk, in parallel: inspect → (system disk: copy and clean identity) → compressed
qcow2 (zstd) → inspect the output → store while hashing → mark the sub-image active. The
server's own disk files are only ever read.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import HostImage, Image, Server, ServerDisk
from hostimage.domain.status import ImageStatus
from hostimage.imaging import ext4fast, guestfs, qemu_img
from hostimage.imaging.inspector import inspect
from hostimage.services import oplog
from hostimage.services.blobs import store_file
from hostimage.services.host_images.common import refresh_derived
from hostimage.services.runtime import Runtime, report_progress
from hostimage.services.settings import get_settings
from hostimage.tasks.queue import enqueue


@dataclass(frozen=True)
class DiskJob:
    sub_id: str
    index: int
    source: Path
    weight: float


class _Progress:
    """Combines per-disk percentages into one task percentage (weighted by disk size)."""

    def __init__(self, rt: Runtime, task_id: str, jobs: list[DiskJob]) -> None:
        self._rt, self._task_id = rt, task_id
        self._done = {j.index: 0.0 for j in jobs}
        self._weights = {j.index: j.weight for j in jobs}
        self._lock = threading.Lock()
        self._last = -1

    def update(self, index: int, pct: float) -> None:
        with self._lock:
            self._done[index] = pct
            total = sum(self._done[i] * self._weights[i] for i in self._done)
            whole = int(total * 95)  # fractions → percent; the last 5 % are bookkeeping
            if whole <= self._last:
                return
            self._last = whole
        report_progress(self._rt.factory, self._task_id, whole)


def _key(host_image_id: str, sub_id: str) -> str:
    return f"host-images/{host_image_id}/{sub_id}.qcow2"


def _prepare(rt: Runtime, host_image_id: str, server_id: str) -> list[DiskJob] | None:
    with rt.factory() as session:
        begin_write(session)
        hi = session.get(HostImage, host_image_id)
        if hi is None or hi.status in (ImageStatus.DELETING, ImageStatus.KILLED):
            server = session.get(Server, server_id)
            if server is not None and server.status == "saving":
                server.status, server.updated_at = "ready", utcnow()  # nothing left to save
            session.commit()
            return None
        subs = {
            s.idx: s for s in session.scalars(select(Image).where(Image.host_image_id == hi.id))
        }
        disks = list(session.scalars(select(ServerDisk).where(ServerDisk.server_id == server_id)))
        total = sum(d.size for d in disks) or 1
        jobs = []
        for d in sorted(disks, key=lambda d: d.idx):
            sub = subs[d.idx]
            if sub.status == ImageStatus.ACTIVE:
                continue  # done by an earlier attempt
            sub.status, sub.updated_at = ImageStatus.SAVING.value, utcnow()
            jobs.append(DiskJob(sub.id, d.idx, rt.disk_path(d.path), d.size / total))
        refresh_derived(hi, list(subs.values()))
        session.commit()
        return jobs


def _save_disk(
    rt: Runtime, host_image_id: str, job: DiskJob, work: Path, progress: _Progress
) -> dict[str, Any]:
    inspect(job.source, "qcow2")
    work.mkdir(parents=True, exist_ok=True)
    source, notes = job.source, {}
    source_fmt = "qcow2"
    if job.index == 0:
        # Identity is cleaned on a private raw copy: the server's own disk is never written.
        # ext file systems are edited directly; anything else goes through libguestfs.
        copy = work / "system-copy.raw"
        qemu_img.convert(job.source, "qcow2", copy, "raw", limits=rt.qemu_limits)
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
        progress=lambda pct: progress.update(job.index, pct / 100),
        limits=rt.qemu_limits,
    )
    info = inspect(out, "qcow2")
    stored = store_file(rt.storage, _key(host_image_id, job.sub_id), out)
    with rt.factory() as session:
        begin_write(session)
        sub = session.get(Image, job.sub_id)
        assert sub is not None
        sub.status, sub.size, sub.checksum = ImageStatus.ACTIVE.value, stored.size, stored.checksum
        sub.virtual_size = info.virtual_size or sub.virtual_size
        sub.object_key, sub.updated_at = stored.key, utcnow()
        oplog.record(
            session,
            None,
            oplog.of_image(sub),
            "save",
            notes={"size": stored.size, "checksum": stored.checksum, **notes},
        )
        session.commit()
    shutil.rmtree(work, ignore_errors=True)
    return notes


def run_save(
    rt: Runtime, task_id: str, host_image_id: str, server_id: str, auto_start: bool
) -> None:
    """Save the server's disks into the host image's sub-images; on failure the host image
    is killed with the reason and no stored data is left behind."""
    work = rt.work_dir / task_id
    shutil.rmtree(work, ignore_errors=True)  # partial files of an earlier attempt
    jobs = _prepare(rt, host_image_id, server_id)
    if jobs is None:
        return
    progress = _Progress(rt, task_id, jobs)
    try:
        with ThreadPoolExecutor(max_workers=max(1, rt.parallelism)) as pool:
            results = list(
                pool.map(
                    lambda j: _save_disk(rt, host_image_id, j, work / f"disk{j.index}", progress),
                    jobs,
                )
            )
    except Exception as exc:
        fail_save(rt, host_image_id, server_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cleaned = next((r["cleaned"] for r in results if "cleaned" in r), None)
    _finish(rt, host_image_id, server_id, auto_start, cleaned)


def _finish(
    rt: Runtime,
    host_image_id: str,
    server_id: str,
    auto_start: bool,
    cleaned: dict[str, Any] | None,
) -> None:
    with rt.factory() as session:
        begin_write(session)
        hi = session.get(HostImage, host_image_id)
        server = session.get(Server, server_id)
        assert hi is not None
        subs = list(session.scalars(select(Image).where(Image.host_image_id == hi.id)))
        refresh_derived(hi, subs)
        hi.updated_at = utcnow()
        if server is not None and server.status == "saving":
            server.status = "running" if auto_start else "ready"
            server.updated_at = utcnow()
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
        session.commit()


def fail_save(rt: Runtime, host_image_id: str, server_id: str | None, reason: str) -> None:
    """Kill the host image with ``reason``, delete whatever was stored, free the server."""
    with rt.factory() as session:
        begin_write(session)
        hi = session.get(HostImage, host_image_id)
        if hi is None:
            return
        subs = list(session.scalars(select(Image).where(Image.host_image_id == hi.id)))
        for sub in subs:
            rt.storage.delete(_key(hi.id, sub.id))
            if sub.status != ImageStatus.DELETING:
                sub.status, sub.status_reason = ImageStatus.KILLED.value, reason
                sub.object_key, sub.checksum, sub.size = None, None, 0
        refresh_derived(hi, subs)
        hi.status_reason = reason
        if server_id:
            server = session.get(Server, server_id)
            if server is not None and server.status == "saving":
                server.status = "ready"
        oplog.record(
            session, None, oplog.of_host_image(hi), "save", success=False, notes={"error": reason}
        )
        session.commit()
