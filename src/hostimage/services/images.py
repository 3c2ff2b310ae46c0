"""System images (系统镜像): create, upload (streaming), list, details, edit, delete, download."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import FormatCopy, Image
from hostimage.db.scoping import view_filter, visible
from hostimage.domain.formats import DiskFormat
from hostimage.domain.permissions import Action, authorize
from hostimage.domain.sharing import Owner
from hostimage.domain.status import ImageStatus
from hostimage.domain.tenancy import View
from hostimage.errors import (
    Conflict,
    HostImageError,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    UnsafeImage,
    ValidationFailed,
)
from hostimage.imaging.inspector import FormatError, StreamInspector
from hostimage.services import oplog
from hostimage.services.context import RequestContext
from hostimage.services.host_images.lifecycle import target_project
from hostimage.services.host_images.read import contains
from hostimage.storage import Storage
from hostimage.tasks.queue import enqueue


def image_dict(img: Image) -> dict[str, Any]:
    """An image as the API answers it."""
    return {
        "id": img.id,
        "name": img.name,
        "description": img.description,
        "status": img.status,
        "status_reason": img.status_reason,
        "domain_id": img.domain_id,
        "project_id": img.project_id,
        "share_scope": img.share_scope,
        "disk_format": img.disk_format,
        "size": img.size,
        "virtual_size": img.virtual_size,
        "checksum": img.checksum,
        "os_type": img.os_type,
        "host_image_id": img.host_image_id,
        "index": img.idx,
        "role": img.role,
        "created_at": img.created_at,
        "updated_at": img.updated_at,
    }


def get_image(session: Session, ctx: RequestContext, image_id: str) -> dict[str, Any]:
    """Details of a visible image (404 otherwise)."""
    return image_dict(get_visible_image(session, ctx, image_id))


def get_visible_image(session: Session, ctx: RequestContext, image_id: str) -> Image:
    img = session.scalar(select(Image).where(Image.id == image_id, visible(Image, ctx.principal)))
    if img is None:
        raise NotFound(f"Image {image_id} not found.")
    return img


def create_image(
    session: Session,
    ctx: RequestContext,
    name: str,
    disk_format: str,
    *,
    description: str = "",
    os_type: str | None = None,
    project_id: str | None = None,
) -> dict[str, Any]:
    """Register a standalone image (``queued``) whose data comes with ``upload``."""
    try:
        fmt = DiskFormat(disk_format)
    except ValueError as exc:
        raise ValidationFailed(f"Unknown disk format {disk_format!r}.") from exc
    begin_write(session)
    project = target_project(session, ctx, project_id)
    authorize(ctx.principal, Action.CREATE, Owner(project.domain_id, project.id))
    img = Image(
        name=name,
        description=description,
        domain_id=project.domain_id,
        project_id=project.id,
        disk_format=fmt.value,
        os_type=os_type,
    )
    session.add(img)
    session.flush()
    oplog.record(session, ctx, oplog.of_image(img), "create", notes={"disk_format": fmt.value})
    session.commit()
    return image_dict(img)


def _claim_upload(session: Session, ctx: RequestContext, image_id: str) -> Image:
    begin_write(session)
    img = session.scalar(
        select(Image).where(Image.id == image_id, visible(Image, ctx.principal)).with_for_update()
    )
    if img is None:
        raise NotFound(f"Image {image_id} not found.")
    with oplog.refusals_logged(session, ctx, oplog.of_image(img), "save"):
        authorize(ctx.principal, Action.UPDATE, Owner(img.domain_id, img.project_id))
        if img.host_image_id:
            raise Conflict("Sub-images get their data from their host image.", code="sub_image")
        if img.status != ImageStatus.QUEUED:
            raise Conflict(
                f"Data can be uploaded only to a queued image; this one is {img.status}.",
                code="bad_status",
            )
    img.status, img.status_reason, img.updated_at = ImageStatus.SAVING.value, None, utcnow()
    session.commit()
    return img


@dataclass
class _Upload:
    size: int = 0
    checksum: str = ""


def upload_data(
    session: Session,
    storage: Storage,
    ctx: RequestContext,
    image_id: str,
    chunks: Iterable[bytes],
    max_bytes: int,
) -> dict[str, Any]:
    """Stream an image's data into storage, hashing and inspecting it on the way.

    Written to a temporary name and published only when complete, hashed (SHA-256) and its
    format checked against the declared one; on any failure nothing is published and the image
    goes back to ``queued`` with the reason, so the upload can be retried.
    """
    img = _claim_upload(session, ctx, image_id)
    key = f"images/{img.id}/{utcnow().strftime('%Y%m%d%H%M%S%f')}"
    writer = storage.open_writer(key)
    digest = hashlib.sha256()
    inspector = StreamInspector()
    up = _Upload()
    try:
        try:
            for chunk in chunks:
                up.size += len(chunk)
                if up.size > max_bytes:
                    raise PayloadTooLarge(f"The upload exceeds the limit of {max_bytes} bytes.")
                digest.update(chunk)
                inspector.feed(chunk)
                writer.write(chunk)
            if up.size == 0:
                raise ValidationFailed("The upload is empty.")
            info = inspector.finish(img.disk_format)
        except FormatError as exc:
            raise UnsafeImage(str(exc), code=exc.code) from exc
        writer.publish()
    except BaseException as exc:
        writer.abort()
        _back_to_queued(session, ctx, img.id, exc)
        raise
    begin_write(session)
    img = session.get(Image, img.id) or img
    img.status = ImageStatus.ACTIVE.value
    img.size = up.size
    img.virtual_size = info.virtual_size or up.size
    img.checksum = f"sha256:{digest.hexdigest()}"
    img.object_key = key
    img.updated_at = utcnow()
    oplog.record(
        session,
        ctx,
        oplog.of_image(img),
        "save",
        notes={"size": up.size, "checksum": img.checksum, "detected_format": info.format},
    )
    session.commit()
    return image_dict(img)


def _back_to_queued(
    session: Session, ctx: RequestContext, image_id: str, exc: BaseException
) -> None:
    session.rollback()
    begin_write(session)
    img = session.get(Image, image_id)
    if img is not None and img.status == ImageStatus.SAVING:
        reason = exc.detail if isinstance(exc, HostImageError) else "The upload was interrupted."
        img.status, img.status_reason, img.updated_at = ImageStatus.QUEUED.value, reason, utcnow()
        oplog.record(
            session, ctx, oplog.of_image(img), "save", success=False, notes={"error": reason}
        )
    session.commit()


@dataclass(frozen=True)
class ImageListQuery:
    view: View = View.PROJECT
    limit: int = 20
    offset: int = 0
    name: str | None = None
    status: str | None = None
    disk_format: str | None = None
    standalone: bool | None = None


def list_images(session: Session, ctx: RequestContext, q: ImageListQuery) -> dict[str, Any]:
    """Images of a view, newest first; sub-images too unless ``standalone``."""
    ctx.principal.check_view(q.view)
    if not 1 <= q.limit <= 1000 or q.offset < 0:
        raise ValidationFailed("limit must be 1–1000 and offset ≥ 0.")
    conds = [view_filter(Image, ctx.principal, q.view)]
    if q.name:
        conds.append(contains(Image.name, q.name))
    if q.status:
        conds.append(Image.status == q.status)
    if q.disk_format:
        conds.append(Image.disk_format == q.disk_format)
    if q.standalone:
        conds.append(Image.host_image_id.is_(None))
    where = and_(*conds)
    total = session.scalar(select(func.count()).select_from(Image).where(where)) or 0
    rows = session.scalars(
        select(Image)
        .where(where)
        .order_by(Image.created_at.desc(), Image.id.desc())
        .limit(q.limit)
        .offset(q.offset)
    )
    return {
        "items": [image_dict(i) for i in rows],
        "total": total,
        "limit": q.limit,
        "offset": q.offset,
    }


def update_image(
    session: Session, ctx: RequestContext, image_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Edit a standalone image's name, description or os_type; a sub-image only its
    description (409 otherwise)."""
    begin_write(session)
    img = get_visible_image(session, ctx, image_id)
    with oplog.refusals_logged(session, ctx, oplog.of_image(img), "update"):
        authorize(ctx.principal, Action.UPDATE, Owner(img.domain_id, img.project_id))
        allowed_keys = {"description"} if img.host_image_id else {"name", "description", "os_type"}
        refused = sorted(k for k in changes if k not in allowed_keys)
        if refused:
            raise Conflict(
                f"These fields cannot be changed here: {', '.join(refused)}.",
                code="sub_image" if img.host_image_id else "not_editable",
            )
    diff = {k: [getattr(img, k), v] for k, v in changes.items() if getattr(img, k) != v}
    if diff:
        for k, (_, v) in diff.items():
            setattr(img, k, v)
        img.updated_at = utcnow()
        oplog.record(session, ctx, oplog.of_image(img), "update", notes={"changes": diff})
    session.commit()
    return image_dict(img)


def delete_image(session: Session, ctx: RequestContext, image_id: str) -> dict[str, Any]:
    """Start deleting a standalone image; its data goes in a task. Sub-images refuse (409)."""
    begin_write(session)
    img = get_visible_image(session, ctx, image_id)
    with oplog.refusals_logged(session, ctx, oplog.of_image(img), "delete"):
        authorize(ctx.principal, Action.DELETE, Owner(img.domain_id, img.project_id))
        if img.host_image_id:
            raise Conflict("A sub-image is deleted with its host image.", code="sub_image")
        if img.status in (ImageStatus.DELETING, ImageStatus.SAVING):
            raise Conflict(f"The image is {img.status}.", code="bad_status")
    img.status, img.updated_at = ImageStatus.DELETING.value, utcnow()
    oplog.record(session, ctx, oplog.of_image(img), "delete")
    task = enqueue(session, "delete_image", "image", img.id, project_id=img.project_id)
    session.commit()
    return {"task_id": task.id, "image_id": img.id}


def purge_image(session: Session, storage: Storage, image_id: str) -> None:
    """Remove a deleting image's row and its object unless another image shares it."""
    begin_write(session)
    img = session.get(Image, image_id)
    if img is None:
        return
    if img.object_key:
        others = session.scalar(
            select(func.count())
            .select_from(Image)
            .where(Image.object_key == img.object_key, Image.id != img.id)
        )
        if not others:
            storage.delete(img.object_key)
    session.delete(img)
    session.commit()


@dataclass(frozen=True)
class Download:
    image: dict[str, Any]
    size: int
    start: int
    end: int
    chunks: Iterator[bytes]


def open_download(
    session: Session,
    storage: Storage,
    ctx: RequestContext,
    image_id: str,
    byte_range: tuple[int, int | None] | None,
    fmt: str | None = None,
) -> Download:
    """Stream an active image's data — native, or its active copy in ``fmt`` — whole or a
    ``(start, end_inclusive)`` range (416 outside it)."""
    img = get_visible_image(session, ctx, image_id)
    if img.status != ImageStatus.ACTIVE or not img.object_key:
        raise Conflict("Only active images can be downloaded.", code="bad_status")
    key, size, checksum, disk_format = img.object_key, img.size, img.checksum, img.disk_format
    if fmt and fmt != img.disk_format:
        copy = session.scalar(
            select(FormatCopy).where(FormatCopy.image_id == img.id, FormatCopy.format == fmt)
        )
        if copy is None or copy.status != "active" or not copy.object_key:
            raise Conflict(
                f"No active {fmt} copy of this image; request one with "
                "POST /host-images/{id}/formats.",
                code="no_such_format",
            )
        key, size, checksum, disk_format = copy.object_key, copy.size or 0, copy.checksum, fmt
    start, end = 0, size - 1
    if byte_range is not None:
        start, last = byte_range
        if start < 0:  # suffix range: the last -start bytes
            start, last = max(size + start, 0), None
        end = size - 1 if last is None else min(last, size - 1)
        if start >= size or start > end:
            raise RangeNotSatisfiable(
                f"The range is outside the image's {size} bytes.",
                headers={"Content-Range": f"bytes */{size}"},
            )
    info = {**image_dict(img), "checksum": checksum, "disk_format": disk_format}
    return Download(
        image=info, size=size, start=start, end=end, chunks=storage.read(key, start, end + 1)
    )
