"""Reading host images: details, the list in three views, sub-images, format copies."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from hostimage.db.models import FormatCopy, HostImage, Image
from hostimage.db.scoping import view_filter, view_key, visible
from hostimage.domain.tenancy import View
from hostimage.errors import NotFound, ValidationFailed
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import Lookups, get_visible
from hostimage.services.host_images.describe import (
    HI,
    answer,
    described,
    of_loaded,
    sub_images_of,
)
from hostimage.services.host_images.totals import TOTALS

OrderBy = Literal[
    "name",
    "created_at",
    "updated_at",
    "size",
    "status",
    "os_type",
    "disk_format",
    "share_scope",
]
ORDERABLE: tuple[str, ...] = get_args(OrderBy)


def get_host_image(session: Session, ctx: RequestContext, host_image_id: str) -> dict[str, Any]:
    """Details of a visible host image (404 otherwise), in one statement."""
    found = described(session, and_(HI.c.id == host_image_id, visible(HostImage, ctx.principal)))
    if not found:
        raise NotFound(f"Host image {host_image_id} not found.")
    return answer(ctx, found[0])


def detail(
    session: Session, ctx: RequestContext, hi: HostImage, lk: Lookups | None = None
) -> dict[str, Any]:
    """Details of a host image a use case has locked (and authorized), including what the
    use case has not flushed yet. With the use case's ``lk`` the sub-images and share targets
    read with the lock are used (no statement): pass it only from a use case that changed
    neither, except through :func:`rename_subs`."""
    session.flush()
    if lk is None or hi.id not in lk.shown:
        return answer(ctx, described(session, HI.c.id == hi.id)[0])
    domain_name = lk.names.domain(hi.domain_id) or ""
    project_name = lk.names.project(hi.project_id) or ""
    return answer(ctx, of_loaded(hi, domain_name, project_name, lk.shown[hi.id]))


@dataclass(frozen=True)
class ListQuery:
    view: View = View.PROJECT
    limit: int = 20
    offset: int = 0
    name: str | None = None
    status: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    os_type: str | None = None
    protected: bool | None = None
    share_scope: str | None = None
    is_standard: bool | None = None
    order_by: str = "created_at"
    order: str = "desc"


def contains(column: Any, text: str) -> Any:
    """A case-insensitive substring match with SQL wildcards in ``text`` taken literally."""
    return column.ilike(f"%{_escape_like(text)}%", escape="\\")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_host_images(session: Session, ctx: RequestContext, q: ListQuery) -> dict[str, Any]:
    """One page of the host images a view shows, with the total: a constant number of queries."""
    ctx.principal.check_view(q.view)
    if not 1 <= q.limit <= 1000 or q.offset < 0:
        raise ValidationFailed("limit must be 1–1000 and offset ≥ 0.")
    if q.order_by not in ORDERABLE or q.order not in ("asc", "desc"):
        raise ValidationFailed(
            f"order_by must be one of {', '.join(ORDERABLE)}; order asc or desc."
        )
    conds = [view_filter(HostImage, ctx.principal, q.view)]
    if q.name:
        conds.append(contains(HI.c.name, q.name))
    for column, value in (
        (HI.c.status, q.status),
        (HI.c.project_id, q.project_id),
        (HI.c.domain_id, q.domain_id),
        (HI.c.os_type, q.os_type),
        (HI.c.share_scope, q.share_scope),
        (HI.c.protected, q.protected),
        (HI.c.is_standard, q.is_standard),
    ):
        if value is not None:
            conds.append(column == value)
    where = and_(*conds)
    # The revision comes with the rows (same round trip, same snapshot) and keys the total.
    items = described(session, where, q.order_by, q.order == "desc", q.limit, q.offset)
    key = (
        view_key(ctx.principal, q.view),
        q.name,
        q.status,
        q.project_id,
        q.domain_id,
        q.os_type,
        q.protected,
        q.share_scope,
        q.is_standard,
    )
    rev = items[0]["revision"] if items else None
    total = TOTALS.get(key, rev) if rev is not None else None
    if total is None:
        total = session.scalar(select(func.count()).select_from(HI).where(where)) or 0
        if rev is not None:
            TOTALS.put(key, rev, total)
    return {
        "items": [answer(ctx, d) for d in items],
        "total": total,
        "limit": q.limit,
        "offset": q.offset,
    }


def list_sub_images(session: Session, ctx: RequestContext, host_image_id: str) -> dict[str, Any]:
    """The sub-images of a visible host image in disk order (F9)."""
    get_visible(session, ctx, host_image_id)
    return {"items": sub_images_of(session, host_image_id)}


NATIVE_STATUS = {
    "queued": "queued",
    "saving": "converting",
    "active": "active",
    "killed": "failed",
    "deleting": "deleting",
}


def list_formats(session: Session, ctx: RequestContext, host_image_id: str) -> dict[str, Any]:
    """Copies per sub-image per format (多云镜像), the native format first for each disk."""
    get_visible(session, ctx, host_image_id)
    subs = list(
        session.scalars(
            select(Image).where(Image.host_image_id == host_image_id).order_by(Image.idx)
        )
    )
    copies: dict[str, list[FormatCopy]] = defaultdict(list)
    if subs:
        for c in session.scalars(
            select(FormatCopy)
            .where(FormatCopy.image_id.in_([s.id for s in subs]))
            .order_by(FormatCopy.format)
        ):
            copies[c.image_id].append(c)
    items: list[dict[str, Any]] = []
    for s in subs:
        items.append(
            {
                "sub_image_id": s.id,
                "sub_image_name": s.name,
                "index": s.idx,
                "format": s.disk_format,
                "native": True,
                "size": s.size if s.checksum else None,
                "checksum": s.checksum,
                "status": NATIVE_STATUS[s.status],
                "error": s.status_reason,
            }
        )
        items.extend(
            {
                "sub_image_id": s.id,
                "sub_image_name": s.name,
                "index": s.idx,
                "format": c.format,
                "native": False,
                "size": c.size,
                "checksum": c.checksum,
                "status": c.status,
                "error": c.error,
            }
            for c in copies[s.id]
        )
    return {"items": items}
