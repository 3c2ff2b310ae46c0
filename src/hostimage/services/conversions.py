"""Format copies (多云镜像): request a copy of every sub-image in a format, and make it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostimage import crashpoints
from hostimage.db.base import utcnow
from hostimage.db.models import FormatCopy, HostImage, Image
from hostimage.db.queue import ClaimLost, enqueue
from hostimage.domain.formats import CONVERTIBLE_FORMATS
from hostimage.domain.permissions import Action, authorize
from hostimage.domain.status import CopyStatus, ImageStatus
from hostimage.errors import Conflict, HostImageError, ValidationFailed
from hostimage.imaging import qemu_img
from hostimage.imaging.inspector import inspect
from hostimage.services import oplog
from hostimage.services.blobs import fetch_verified, store_file
from hostimage.services.context import RequestContext
from hostimage.services.faults import describe, is_transient
from hostimage.services.host_images.common import lock_visible, owner_of, sub_images
from hostimage.services.limits import ImageLimits, ensure_room, image_limits
from hostimage.services.runtime import TaskRun

# qemu-img creation options per target format: streamOptimized VMDK (safe to import
# anywhere), fixed-size VHD (what Hyper-V/Azure-style platforms expect), zstd qcow2.
CONVERT_OPTIONS: dict[str, dict[str, str]] = {
    "qcow2": {"compression_type": "zstd"},
    "vmdk": {"subformat": "streamOptimized"},
    "vhd": {"subformat": "fixed", "force_size": "on"},
    "raw": {},
}


def request_format(
    session: Session, ctx: RequestContext, host_image_id: str, fmt: str
) -> dict[str, Any]:
    """Queue a copy of every sub-image in ``fmt`` (existing active copies are kept)."""
    if fmt not in CONVERTIBLE_FORMATS:
        allowed = ", ".join(sorted(CONVERTIBLE_FORMATS))
        raise ValidationFailed(f"format must be one of {allowed}.")
    hi = lock_visible(session, ctx, host_image_id)
    with oplog.refusals_logged(session, ctx, oplog.of_host_image(hi), "convert"):
        authorize(ctx.principal, Action.CONVERT, owner_of(hi))
        if hi.status != ImageStatus.ACTIVE:
            raise Conflict(
                f"The host image is {hi.status}; only active images convert.",
                code="image_not_active",
            )
    for sub in sub_images(session, hi.id):
        if sub.disk_format == fmt:
            continue
        copy = session.scalar(
            select(FormatCopy).where(FormatCopy.image_id == sub.id, FormatCopy.format == fmt)
        )
        if copy is None:
            session.add(FormatCopy(image_id=sub.id, format=fmt, status=CopyStatus.QUEUED.value))
        elif copy.status == CopyStatus.FAILED:
            copy.status, copy.error, copy.updated_at = CopyStatus.QUEUED.value, None, utcnow()
    oplog.record(session, ctx, oplog.of_host_image(hi), "convert", notes={"format": fmt})
    task = enqueue(
        session, "convert", "host_image", hi.id, project_id=hi.project_id, payload={"format": fmt}
    )
    session.commit()
    return {"task_id": task.id, "host_image_id": hi.id, "format": fmt}


class ConversionFailed(HostImageError):
    code = "conversion_failed"
    title = "Conversion failed"


def copy_key(host_image_id: str, sub_id: str, fmt: str, run: TaskRun) -> str:
    """Where a run stores a format copy: a name of its own, so two runs never share one."""
    return f"host-images/{host_image_id}/{sub_id}-{run.claim.short}.{fmt}"


def run_convert(run: TaskRun, host_image_id: str, fmt: str) -> None:
    """Make the missing ``fmt`` copies of a host image's sub-images, one after the other;
    a copy that fails on its data is marked failed with its error and the others go on. A
    transient failure (storage, database) propagates, for the worker to retry the task."""
    with run.write() as session:
        hi = session.get(HostImage, host_image_id)
        if hi is None:
            return
        subs = [s for s in sub_images(session, hi.id) if s.disk_format != fmt]
        if hi.status != ImageStatus.ACTIVE:
            _fail_waiting(session, [s.id for s in subs], fmt, f"The host image is {hi.status}.")
            return
        jobs: list[tuple[str, Image]] = []
        for sub in subs:
            copy = session.scalar(
                select(FormatCopy).where(FormatCopy.image_id == sub.id, FormatCopy.format == fmt)
            )
            if copy is None:
                copy = FormatCopy(image_id=sub.id, format=fmt, status=CopyStatus.QUEUED.value)
                session.add(copy)
                session.flush()
            if copy.status == CopyStatus.FAILED:
                copy.status = CopyStatus.QUEUED.value
            if copy.status != CopyStatus.ACTIVE:
                copy.status, copy.error, copy.updated_at = (
                    CopyStatus.CONVERTING.value,
                    None,
                    utcnow(),
                )
                jobs.append((copy.id, sub))
        limits = image_limits(session)
    crashpoints.reached("convert.started")
    failures = []
    for n, (copy_id, sub) in enumerate(jobs):
        try:
            _convert_one(run, host_image_id, copy_id, sub, fmt, limits)
        except Exception as exc:
            if isinstance(exc, ClaimLost) or is_transient(exc):
                raise
            failures.append(f"{sub.name}: {describe(exc)}")
            _mark(run, copy_id, CopyStatus.FAILED, error=describe(exc))
        finally:
            run.cleanup()
        run.progress(100 * (n + 1) / max(len(jobs), 1))
    if failures:
        raise ConversionFailed("; ".join(failures))


def fail_convert(run: TaskRun, host_image_id: str, fmt: str, reason: str) -> None:
    """The task gave up: every copy in ``fmt`` still waiting or converting fails with
    ``reason`` (copies made already stay)."""
    with run.write() as session:
        ids = [s.id for s in sub_images(session, host_image_id)]
        _fail_waiting(session, ids, fmt, reason)


def _fail_waiting(session: Session, sub_ids: list[str], fmt: str, reason: str) -> None:
    copies = session.scalars(
        select(FormatCopy).where(
            FormatCopy.image_id.in_(sub_ids),
            FormatCopy.format == fmt,
            FormatCopy.status.in_([CopyStatus.QUEUED.value, CopyStatus.CONVERTING.value]),
        )
    )
    for copy in copies:
        copy.status, copy.error, copy.updated_at = CopyStatus.FAILED.value, reason, utcnow()


def _convert_one(
    run: TaskRun, host_image_id: str, copy_id: str, sub: Image, fmt: str, limits: ImageLimits
) -> None:
    rt = run.rt
    if not sub.object_key:
        raise RuntimeError("The sub-image has no stored data.")
    limits.check_virtual_size(sub.virtual_size, f"Sub-image {sub.name}")
    work = run.work
    work.mkdir(parents=True, exist_ok=True)
    ensure_room(work, sub.size, "Fetching the sub-image")
    src = work / f"src.{sub.disk_format}"
    fetch_verified(rt.storage, sub.object_key, src, sub.checksum)
    run.check()
    limits.check_virtual_size(inspect(src, sub.disk_format).virtual_size or 0, sub.name)
    needed = qemu_img.measure(src, sub.disk_format, fmt, limits=rt.qemu_limits)
    ensure_room(work, needed, f"A {fmt} copy of {sub.name}")
    out = work / f"out.{fmt}"
    qemu_img.convert(
        src,
        sub.disk_format,
        out,
        fmt,
        compress=fmt == "qcow2",
        options=CONVERT_OPTIONS[fmt],
        progress=lambda _pct: run.check(),
        limits=rt.qemu_limits,
    )
    inspect(out, fmt)
    run.check()
    stored = store_file(rt.storage, copy_key(host_image_id, sub.id, fmt, run), out)
    crashpoints.reached("convert.published")
    if not _mark(
        run, copy_id, CopyStatus.ACTIVE, size=stored.size, checksum=stored.checksum, key=stored.key
    ):
        rt.storage.delete(stored.key)


def _mark(
    run: TaskRun,
    copy_id: str,
    status: CopyStatus,
    *,
    error: str | None = None,
    size: int | None = None,
    checksum: str | None = None,
    key: str | None = None,
) -> bool:
    """Record a copy's outcome; False when the copy is gone (its host image was deleted
    meanwhile) or the run lost its task — what it stored must then go."""
    try:
        with run.write() as session:
            copy = session.get(FormatCopy, copy_id)
            if copy is None or copy.status != CopyStatus.CONVERTING:
                return False
            copy.status, copy.error, copy.updated_at = status.value, error, utcnow()
            if status == CopyStatus.ACTIVE:
                copy.size, copy.checksum, copy.object_key = size, checksum, key
            sub = session.get(Image, copy.image_id)
            if sub is not None:
                oplog.record(
                    session,
                    None,
                    oplog.of_image(sub),
                    "convert",
                    success=status == CopyStatus.ACTIVE,
                    notes={
                        "format": copy.format,
                        "size": size,
                        "checksum": checksum,
                        "error": error,
                    },
                )
    except ClaimLost:
        if key is not None:
            run.rt.storage.delete(key)
        raise
    return True
