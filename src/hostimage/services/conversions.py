"""Format copies (多云镜像): request a copy of every sub-image in a format, and make it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import FormatCopy, HostImage, Image
from hostimage.domain.formats import CONVERTIBLE_FORMATS
from hostimage.domain.permissions import Action, authorize
from hostimage.domain.status import ImageStatus
from hostimage.errors import Conflict, ValidationFailed
from hostimage.imaging import qemu_img
from hostimage.imaging.inspector import inspect
from hostimage.services import oplog
from hostimage.services.blobs import fetch_verified, store_file
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import lock_visible, owner_of, sub_images
from hostimage.services.runtime import Runtime, report_progress
from hostimage.tasks.queue import enqueue

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
            session.add(FormatCopy(image_id=sub.id, format=fmt))
        elif copy.status == "failed":
            copy.status, copy.error, copy.updated_at = "queued", None, utcnow()
    oplog.record(session, ctx, oplog.of_host_image(hi), "convert", notes={"format": fmt})
    task = enqueue(
        session, "convert", "host_image", hi.id, project_id=hi.project_id, payload={"format": fmt}
    )
    session.commit()
    return {"task_id": task.id, "host_image_id": hi.id, "format": fmt}


def copy_key(host_image_id: str, sub_id: str, fmt: str) -> str:
    return f"host-images/{host_image_id}/{sub_id}.{fmt}"


def run_convert(rt: Runtime, task_id: str, host_image_id: str, fmt: str) -> None:
    """Make the missing ``fmt`` copies of a host image's sub-images, one after the other;
    a failing copy is marked failed with its error and the others go on."""
    with rt.factory() as session:
        begin_write(session)
        hi = session.get(HostImage, host_image_id)
        if hi is None or hi.status != ImageStatus.ACTIVE:
            session.rollback()
            return
        subs = [s for s in sub_images(session, hi.id) if s.disk_format != fmt]
        jobs: list[tuple[str, Image]] = []
        for sub in subs:
            copy = session.scalar(
                select(FormatCopy).where(FormatCopy.image_id == sub.id, FormatCopy.format == fmt)
            )
            if copy is None:
                copy = FormatCopy(image_id=sub.id, format=fmt)
                session.add(copy)
                session.flush()
            if copy.status != "active":
                copy.status, copy.updated_at = "converting", utcnow()
                jobs.append((copy.id, sub))
        session.commit()
    work = rt.work_dir / task_id
    failures = []
    for n, (copy_id, sub) in enumerate(jobs):
        try:
            _convert_one(rt, work, host_image_id, copy_id, sub, fmt)
        except Exception as exc:
            failures.append(f"{sub.name}: {exc}")
            _mark(rt, copy_id, "failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        report_progress(rt.factory, task_id, 100 * (n + 1) / max(len(jobs), 1))
    if failures:
        raise RuntimeError("; ".join(failures))


def _convert_one(
    rt: Runtime, work: Path, host_image_id: str, copy_id: str, sub: Image, fmt: str
) -> None:
    if not sub.object_key:
        raise RuntimeError("The sub-image has no stored data.")
    src = work / f"src.{sub.disk_format}"
    fetch_verified(rt.storage, sub.object_key, src, sub.checksum)
    inspect(src, sub.disk_format)
    out = work / f"out.{fmt}"
    qemu_img.convert(
        src,
        sub.disk_format,
        out,
        fmt,
        compress=fmt == "qcow2",
        options=CONVERT_OPTIONS[fmt],
        limits=rt.qemu_limits,
    )
    inspect(out, fmt)
    stored = store_file(rt.storage, copy_key(host_image_id, sub.id, fmt), out)
    _mark(rt, copy_id, "active", size=stored.size, checksum=stored.checksum, key=stored.key)


def _mark(
    rt: Runtime,
    copy_id: str,
    status: str,
    *,
    error: str | None = None,
    size: int | None = None,
    checksum: str | None = None,
    key: str | None = None,
) -> None:
    with rt.factory() as session:
        begin_write(session)
        copy = session.get(FormatCopy, copy_id)
        if copy is None:
            return
        copy.status, copy.error, copy.updated_at = status, error, utcnow()
        if status == "active":
            copy.size, copy.checksum, copy.object_key = size, checksum, key
        sub = session.get(Image, copy.image_id)
        if sub is not None:
            oplog.record(
                session,
                None,
                oplog.of_image(sub),
                "convert",
                success=status == "active",
                notes={"format": copy.format, "size": size, "checksum": checksum, "error": error},
            )
        session.commit()
