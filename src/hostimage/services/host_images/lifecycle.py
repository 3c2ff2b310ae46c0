"""Creating host images by composing images (F2), deleting them (F7) and purging their data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hostimage import crashpoints
from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import FormatCopy, HostImage, Image, Project, Share
from hostimage.db.queue import enqueue
from hostimage.db.scoping import visible
from hostimage.domain.naming import sub_image_name
from hostimage.domain.permissions import Action, authorize
from hostimage.domain.sharing import Owner
from hostimage.domain.status import ImageStatus, delete_refusal
from hostimage.errors import Conflict, Invalid, ValidationFailed
from hostimage.services import oplog
from hostimage.services.builds import wait_for_builds
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import (
    Lookups,
    committed,
    lock_visible,
    name_taken,
    owner_of,
    refresh_derived,
    sub_images,
    unique_name,
)
from hostimage.services.host_images.read import detail
from hostimage.services.limits import image_limits
from hostimage.services.runtime import TaskRun
from hostimage.services.settings import three_level


def target_project(session: Session, ctx: RequestContext, project_id: str | None) -> Project:
    """The project new objects go to: the given one, else the token's current project."""
    pid = project_id or ctx.principal.project_id
    project = session.get(Project, pid) if pid else None
    if project is None:
        raise Invalid("No such project to create in.", code="unknown_project")
    return project


def compose_host_image(
    session: Session,
    ctx: RequestContext,
    name: str,
    image_ids: list[str],
    *,
    project_id: str | None = None,
    generate_name: bool = False,
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Compose a host image from active images, the first being the system disk (F2).

    New sub-image rows share the stored data of the sources; the sources stay as they were.
    """
    if not image_ids:
        raise ValidationFailed("image_ids must name at least one image.")
    if len(set(image_ids)) != len(image_ids):
        raise ValidationFailed("image_ids must not repeat an image.")
    begin_write(session)
    project = target_project(session, ctx, project_id)
    authorize(ctx.principal, Action.CREATE, Owner(project.domain_id, project.id))
    # FOR SHARE: a concurrent delete of a source waits until the new sub-images are
    # recorded, so its purge sees that they share the stored data and keeps it.
    found = {
        img.id: img
        for img in session.scalars(
            select(Image)
            .where(Image.id.in_(image_ids), visible(Image, ctx.principal))
            .with_for_update(read=True)
        )
    }
    missing = [i for i in image_ids if i not in found]
    if missing:
        raise Invalid(f"Unknown images: {', '.join(missing)}.", code="unknown_image")
    inactive = [i for i in image_ids if found[i].status != ImageStatus.ACTIVE]
    if inactive:
        raise Conflict(f"Images not active: {', '.join(inactive)}.", code="image_not_active")
    limits = image_limits(session)
    for image_id in image_ids:
        limits.check_virtual_size(found[image_id].virtual_size, f"Image {image_id}")
    tl = three_level(session)
    if name_taken(session, name, project.domain_id, tl):
        if not generate_name:
            raise Conflict(f"A host image named {name!r} exists.", code="name_taken")
        name = unique_name(session, name, project.domain_id, tl)
    attrs = dict(attributes or {})
    first = found[image_ids[0]]
    attrs.setdefault("os_type", first.os_type)
    now = utcnow()
    hi = HostImage(
        name=name,
        domain_id=project.domain_id,
        project_id=project.id,
        is_standard=False,
        created_at=now,
        updated_at=now,
        **attrs,
    )
    session.add(hi)
    session.flush()
    subs = [
        Image(
            name=sub_image_name(name, idx),
            domain_id=project.domain_id,
            project_id=project.id,
            status=ImageStatus.ACTIVE.value,
            disk_format=src.disk_format,
            size=src.size,
            virtual_size=src.virtual_size,
            checksum=src.checksum,
            object_key=src.object_key,
            host_image_id=hi.id,
            idx=idx,
            role="root" if idx == 0 else "data",
            os_type=src.os_type,
            created_at=now,
            updated_at=now,
        )
        for idx, src in enumerate(found[i] for i in image_ids)
    ]
    session.add_all(subs)
    session.flush()  # assigns the sub-images' ids for the log entry
    refresh_derived(hi, subs)
    oplog.record(
        session,
        ctx,
        oplog.of_host_image(hi),
        "create",
        notes={"composed_from": image_ids, "sub_images": [s.id for s in subs]},
    )
    crashpoints.reached("compose.committing")
    session.commit()
    return detail(session, ctx, hi)


def delete_host_image(session: Session, ctx: RequestContext, host_image_id: str) -> dict[str, Any]:
    """Start deleting a host image (F7): status ``deleting`` now, data removed by a task.

    Protected → 409 ``protected``. Returns ``{task_id, host_image_id}``.
    """
    lk = Lookups(session)
    hi = lock_visible(session, ctx, host_image_id, lk)
    with committed(session):
        task_id = apply_delete(session, ctx, hi, lk)
    return {"task_id": task_id, "host_image_id": hi.id}


def apply_delete(session: Session, ctx: RequestContext, hi: HostImage, lk: Lookups) -> str:
    """:func:`delete_host_image` on a locked row, without committing; the purge task's id."""
    with oplog.refusals_recorded(session, ctx, oplog.of_host_image(hi), "delete", lk.names):
        authorize(ctx.principal, Action.DELETE, owner_of(hi))
        refusal = delete_refusal(hi.protected, ImageStatus(hi.status))
        if refusal:
            raise Conflict(refusal[1], code=refusal[0])
    hi.status, hi.updated_at = ImageStatus.DELETING.value, utcnow()
    lk.touch_subs(hi.id, status=ImageStatus.DELETING.value)
    oplog.record(
        session, ctx, oplog.of_host_image(hi), "delete", notes=removal_notes(lk, hi), names=lk.names
    )
    task = enqueue(session, "delete_host_image", "host_image", hi.id, project_id=hi.project_id)
    return task.id


def removal_notes(lk: Lookups, hi: HostImage) -> dict[str, Any]:
    """What a delete removes, for its log entry: every sub-image with its size and checksum."""
    shown = lk.shown.get(hi.id)
    subs = shown["sub_images"] if shown else None
    if subs is None:
        subs = [
            {
                "id": s.id,
                "name": s.name,
                "index": s.idx,
                "role": s.role,
                "disk_format": s.disk_format,
                "size": s.size,
                "virtual_size": s.virtual_size,
                "checksum": s.checksum,
            }
            for s in sub_images(lk.session, hi.id)
        ]
    keep = ("id", "name", "index", "role", "disk_format", "size", "virtual_size", "checksum")
    removed = [{k: sub.get(k) for k in keep} for sub in subs]
    return {
        "status": hi.status,
        "size": sum(int(sub.get("size") or 0) for sub in removed),
        "sub_images": removed,
    }


def purge_host_image(run: TaskRun, host_image_id: str) -> None:
    """Remove a deleting host image's rows and every stored object no other image uses.

    Idempotent: run again after a crash, it finishes what was left. While a server is being
    built from one of its sub-images the purge waits (:class:`Deferred`); a storage failure
    propagates, for the worker to retry.
    """
    with run.write() as session:
        hi = session.scalar(
            select(HostImage).where(HostImage.id == host_image_id).with_for_update()
        )
        if hi is None:
            return
        if hi.status != ImageStatus.DELETING.value:
            raise Conflict("Only a host image marked deleting is purged.", code="bad_status")
        subs = sub_images(session, hi.id)
        sub_ids = [s.id for s in subs]
        wait_for_builds(session, sub_ids)
        keys = {s.object_key for s in subs if s.object_key}
        copy_keys = set(
            session.scalars(
                select(FormatCopy.object_key).where(
                    FormatCopy.image_id.in_(sub_ids), FormatCopy.object_key.is_not(None)
                )
            )
        )
        still_used = set(
            session.scalars(
                select(Image.object_key).where(Image.object_key.in_(keys), Image.id.not_in(sub_ids))
            )
        )
        # Objects go first: the rows still say "deleting", so a crash part-way leaves rows
        # to retry from, never an object no row points at.
        for key in sorted((keys - still_used) | {k for k in copy_keys if k}):
            run.rt.storage.delete(key)
        crashpoints.reached("purge.data_removed")
        session.execute(delete(FormatCopy).where(FormatCopy.image_id.in_(sub_ids)))
        session.execute(delete(Share).where(Share.resource_id.in_([hi.id, *sub_ids])))
        session.execute(delete(Image).where(Image.id.in_(sub_ids)))
        session.execute(delete(HostImage).where(HostImage.id == hi.id))


def note_retry(run: TaskRun, host_image_id: str, reason: str) -> None:
    """Show why a deletion is still going on (``status_reason``; the status stays)."""
    with run.write() as session:
        hi = session.get(HostImage, host_image_id)
        if hi is not None and hi.status == ImageStatus.DELETING:
            hi.status_reason = reason[:1000]
