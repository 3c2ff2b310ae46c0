"""System images (系统镜像): create, upload (streaming), list, details, edit, delete, download."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from hostimage import crashpoints
from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import FormatCopy, Image
from hostimage.db.queue import Claim, ClaimLost, Heartbeat, enqueue, fence, finish, start_claimed
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
    RangeNotSatisfiable,
    UnsafeImage,
    ValidationFailed,
)
from hostimage.imaging.inspector import FormatError, StreamInspector
from hostimage.services import oplog
from hostimage.services.builds import wait_for_builds
from hostimage.services.context import RequestContext
from hostimage.services.faults import as_service_error, describe
from hostimage.services.host_images.lifecycle import target_project
from hostimage.services.host_images.read import contains
from hostimage.services.limits import ImageLimits, image_limits
from hostimage.services.runtime import TaskRun
from hostimage.storage import Storage


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


UPLOAD_TASK = "upload"


def upload_key(image_id: str, claim: Claim) -> str:
    """Where an upload stores its data: a name of its own per upload."""
    return f"images/{image_id}/{claim.token}"


def _claim_upload(
    session: Session, ctx: RequestContext, image_id: str, holder: str
) -> tuple[Image, Claim, ImageLimits]:
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
        if img.status not in (ImageStatus.QUEUED, ImageStatus.KILLED):
            raise Conflict(
                "Data can be uploaded only to a queued image (or one whose upload failed); "
                f"this one is {img.status}.",
                code="bad_status",
            )
    img.status, img.status_reason, img.updated_at = ImageStatus.SAVING.value, None, utcnow()
    # The upload is a task held by this request: if the process dies, the workers see its
    # heartbeat stop and end the image ``killed`` instead of leaving it ``saving``.
    claim = start_claimed(session, UPLOAD_TASK, "image", img.id, holder, project_id=img.project_id)
    # The row names the object before it is written: however long the upload takes, the
    # garbage collector never takes the object for one no row references.
    img.object_key = upload_key(img.id, claim)
    limits = image_limits(session)
    session.commit()
    return img, claim, limits


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
    holder: str = "api",
) -> dict[str, Any]:
    """Stream an image's data into storage, hashing and inspecting it on the way.

    Written under a name of its own and published only when complete, hashed (SHA-256), its
    format checked against the declared one and its sizes against ``max_upload_size_gb`` and
    ``max_virtual_size_gb``. On any failure nothing stays stored and the image ends
    ``killed`` with the reason; a killed standalone image takes a new upload.
    """
    img, claim, limits = _claim_upload(session, ctx, image_id, holder)
    crashpoints.reached("upload.claimed")
    key = upload_key(img.id, claim)
    writer = storage.open_writer(key)
    digest = hashlib.sha256()
    inspector = StreamInspector()
    up = _Upload()
    published = False
    factory = sessionmaker(bind=session.get_bind())
    try:
        with Heartbeat(factory, claim) as heartbeat:
            try:
                for chunk in chunks:
                    if heartbeat.lost.is_set():
                        raise ClaimLost("The upload was ended by the service.")
                    up.size += len(chunk)
                    limits.check_upload_size(up.size)
                    digest.update(chunk)
                    inspector.feed(chunk)
                    writer.write(chunk)
                    crashpoints.reached("upload.receiving")
                if up.size == 0:
                    raise ValidationFailed("The upload is empty.")
                info = inspector.finish(img.disk_format)
            except FormatError as exc:
                raise UnsafeImage(str(exc), code=exc.code) from exc
            limits.check_virtual_size(info.virtual_size or up.size)
            writer.publish()
            published = True
            crashpoints.reached("upload.published")
            begin_write(session)
            fence(session, claim)
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
            finish(session, claim)
            session.commit()
    except BaseException as exc:
        if published:
            storage.delete(key)
        else:
            writer.abort()
        _kill_upload(session, ctx, img.id, claim, exc)
        service_exc = as_service_error(exc)
        if service_exc is not exc:
            raise service_exc from exc
        raise
    return image_dict(img)


def _kill_upload(
    session: Session, ctx: RequestContext | None, image_id: str, claim: Claim, exc: BaseException
) -> None:
    """End a failed upload: the image ``killed`` with the reason, the task failed."""
    session.rollback()
    begin_write(session)
    try:
        fence(session, claim)
    except ClaimLost:
        session.rollback()  # the workers ended it already
        return
    service_exc = as_service_error(exc)
    if isinstance(service_exc, HostImageError):
        reason = service_exc.detail
    elif isinstance(exc, Exception) and not isinstance(exc, ClaimLost):
        reason = f"The upload was interrupted: {describe(exc)}"
    else:
        reason = "The upload was interrupted."
    img = session.get(Image, image_id)
    if img is not None and img.status == ImageStatus.SAVING:
        img.status, img.status_reason, img.updated_at = ImageStatus.KILLED.value, reason, utcnow()
        img.object_key = None
        oplog.record(
            session, ctx, oplog.of_image(img), "save", success=False, notes={"error": reason}
        )
    finish(session, claim, error=reason)
    session.commit()


def give_up_upload(session: Session, storage: Storage, claim: Claim, reason: str) -> None:
    """An upload whose request stopped beating (its process died): the image ends
    ``killed``; in the caller's write transaction, fenced by the caller's claim."""
    img = session.get(Image, claim.target_id)
    if img is not None and img.status == ImageStatus.SAVING:
        img.status, img.status_reason, img.updated_at = ImageStatus.KILLED.value, reason, utcnow()
        if img.object_key:
            storage.delete(img.object_key)  # published, perhaps, before the process died
        img.object_key = None
        oplog.record(
            session, None, oplog.of_image(img), "save", success=False, notes={"error": reason}
        )


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


def purge_image(run: TaskRun, image_id: str) -> None:
    """Remove a deleting image's row and its object unless another image shares it.

    Idempotent: run again after a crash, it finishes what was left. While a server is being
    built from the image, the purge waits (:class:`Deferred`); a storage failure propagates,
    for the worker to retry.
    """
    with run.write() as session:
        img = session.scalar(select(Image).where(Image.id == image_id).with_for_update())
        if img is None:
            return
        if img.status != ImageStatus.DELETING:
            raise Conflict("Only an image marked deleting is purged.", code="bad_status")
        wait_for_builds(session, [img.id])
        if img.object_key:
            others = session.scalar(
                select(func.count())
                .select_from(Image)
                .where(Image.object_key == img.object_key, Image.id != img.id)
            )
            if not others:
                run.rt.storage.delete(img.object_key)
        session.delete(img)


def note_retry(run: TaskRun, image_id: str, reason: str) -> None:
    """Show why a deletion is still going on (``status_reason``; the status stays)."""
    with run.write() as session:
        img = session.get(Image, image_id)
        if img is not None and img.status == ImageStatus.DELETING:
            img.status_reason = reason[:1000]


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
