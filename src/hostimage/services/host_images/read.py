"""Reading host images: details, the list in three views, sub-images, format copies."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session

from hostimage.db import revision
from hostimage.db.aggregate import json_rows, rows_of, timestamp_of
from hostimage.db.models import Domain, FormatCopy, HostImage, Image, Project, Share
from hostimage.db.scoping import view_filter, view_key, visible
from hostimage.domain.permissions import Action, allowed
from hostimage.domain.sharing import Owner
from hostimage.domain.status import ImageStatus, delete_refusal
from hostimage.domain.tenancy import View
from hostimage.errors import NotFound, ValidationFailed
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import get_visible
from hostimage.services.host_images.totals import TOTALS

ORDERABLE = (
    "name",
    "created_at",
    "updated_at",
    "size",
    "status",
    "os_type",
    "disk_format",
    "share_scope",
)


_HI = HostImage.__table__
_IMG = Image.__table__
_SHARE = Share.__table__
# Rows are read as plain tuples (no ORM objects): a list page is the hottest read there is.
_SUB_COLUMNS = (
    _IMG.c.id,
    _IMG.c.name,
    _IMG.c.idx.label("index"),
    _IMG.c.role,
    _IMG.c.disk_format,
    _IMG.c.size,
    _IMG.c.virtual_size,
    _IMG.c.checksum,
    _IMG.c.status,
    _IMG.c.status_reason,
    _IMG.c.description,
    _IMG.c.created_at,
    _IMG.c.project_id,
)
_SUB_FIELDS = tuple(c.key for c in _SUB_COLUMNS)
_HI_FIELDS = tuple(c.key for c in _HI.columns)


def sub_image_dict(img: Image) -> dict[str, Any]:
    """A sub-image as it appears inside a host image."""
    return {
        "id": img.id,
        "name": img.name,
        "index": img.idx,
        "role": img.role,
        "disk_format": img.disk_format,
        "size": img.size,
        "virtual_size": img.virtual_size,
        "checksum": img.checksum,
        "status": img.status,
        "status_reason": img.status_reason,
        "description": img.description,
        "created_at": img.created_at,
        "project_id": img.project_id,
    }


_DOMAIN, _PROJECT = Domain.__table__.c, Project.__table__.c
_ROW_FIELDS = (*_HI_FIELDS, "domain_name", "project_name")


@lru_cache(maxsize=4)
def _description(dialect: str) -> Select[Any]:
    """Every column a host image is shown with, sub-images and share targets as JSON; built
    once per dialect (building a statement costs more than running this part of it)."""
    subs = select(json_rows(dialect, *_SUB_COLUMNS)).where(_IMG.c.host_image_id == _HI.c.id)
    # One index probe per share row for its name (a join made the planner hash every project).
    name = case(
        (
            _SHARE.c.target_kind == "project",
            select(_PROJECT.name).where(_PROJECT.id == _SHARE.c.target_id).scalar_subquery(),
        ),
        else_=select(_DOMAIN.name).where(_DOMAIN.id == _SHARE.c.target_id).scalar_subquery(),
    )
    shares = select(json_rows(dialect, _SHARE.c.target_kind, _SHARE.c.target_id, name)).where(
        _SHARE.c.resource_id == _HI.c.id
    )
    return select(
        *_HI.columns,
        _DOMAIN.name,
        _PROJECT.name,
        revision.current_for(dialect),
        subs.scalar_subquery(),
        shares.scalar_subquery(),
    )


# Rows are read by position: SQLAlchemy need not map a cached statement's result columns
# onto each new statement object (a private option, as the ORM itself uses it; the
# version is pinned by the lock file and the tests read every field).
_BY_POSITION = {"_result_disable_adapt_to_context": True}


def _ordered(columns: Any, order_by: str | None, descending: bool) -> tuple[Any, ...]:
    if order_by is None:
        return ()
    if descending:
        return (columns[order_by].desc(), columns.id.desc())
    return (columns[order_by].asc(), columns.id.asc())


def _described(
    session: Session,
    where: Any,
    order_by: str | None = None,
    descending: bool = True,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Host images matching ``where``, described as the API shows them plus the catalogue
    revision (``revision``), ordered by ``order_by`` then id: one statement for any page."""
    dialect = session.get_bind().dialect.name
    ordering = _ordered(_HI.c, order_by, descending)
    described = _description(dialect)
    if dialect == "sqlite":
        # SQLite would build the JSON for every match before sorting (350 ms for a domain
        # view at 100,000 images): the page's ids first, then the rest for those rows.
        page = select(_HI.c.id).where(where).order_by(*ordering).limit(limit).offset(offset)
        ids = page.subquery("page")
        described = described.select_from(ids).join(_HI, _HI.c.id == ids.c.id)
    else:
        # PostgreSQL evaluates select-list subqueries after the sort and the limit.
        described = described.where(where).limit(limit).offset(offset)
    rows = session.execute(
        described.join(Domain.__table__, _DOMAIN.id == _HI.c.domain_id)
        .join(Project.__table__, _PROJECT.id == _HI.c.project_id)
        .order_by(*ordering),
        execution_options=_BY_POSITION,
    ).all()
    return [_item(r) for r in rows]


def _item(row: Any) -> dict[str, Any]:
    d = dict(zip(_ROW_FIELDS, row[: len(_ROW_FIELDS)], strict=True))
    d["revision"] = row[-3]
    subs = [dict(zip(_SUB_FIELDS, r, strict=True)) for r in rows_of(row[-2])]
    for sub in subs:
        sub["created_at"] = timestamp_of(sub["created_at"])
    subs.sort(key=lambda sub: sub["index"] if sub["index"] is not None else -1)
    d["sub_images"] = subs
    projects: list[dict[str, str]] = []
    domains: list[dict[str, str]] = []
    for kind, tid, name in sorted(rows_of(row[-1]), key=lambda t: t[1]):
        (projects if kind == "project" else domains).append({"id": tid, "name": name or ""})
    d["shared_project_ids"] = [p["id"] for p in projects]
    d["shared_domain_ids"] = [x["id"] for x in domains]
    d["shared_projects"] = projects
    d["shared_domains"] = domains
    return d


def _answer(ctx: RequestContext, d: dict[str, Any]) -> dict[str, Any]:
    """An item of :func:`_described` as the caller sees it: can it be deleted, and why not."""
    del d["revision"]
    refusal = delete_refusal(d["protected"], ImageStatus(d["status"]))
    if refusal is None and not allowed(
        ctx.principal, Action.DELETE, Owner(domain_id=d["domain_id"], project_id=d["project_id"])
    ):
        refusal = ("forbidden", "Your role does not allow deleting this image.")
    d["can_delete"] = refusal is None
    d["delete_fail_reason"] = refusal[1] if refusal else None
    return d


def get_host_image(session: Session, ctx: RequestContext, host_image_id: str) -> dict[str, Any]:
    """Details of a visible host image (404 otherwise), in one statement."""
    found = _described(session, and_(_HI.c.id == host_image_id, visible(HostImage, ctx.principal)))
    if not found:
        raise NotFound(f"Host image {host_image_id} not found.")
    return _answer(ctx, found[0])


def detail(session: Session, ctx: RequestContext, hi: HostImage) -> dict[str, Any]:
    """Details of a host image a use case has loaded (and authorized), including what the
    use case has not flushed yet."""
    session.flush()
    return _answer(ctx, _described(session, _HI.c.id == hi.id)[0])


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
        conds.append(contains(_HI.c.name, q.name))
    for column, value in (
        (_HI.c.status, q.status),
        (_HI.c.project_id, q.project_id),
        (_HI.c.domain_id, q.domain_id),
        (_HI.c.os_type, q.os_type),
        (_HI.c.share_scope, q.share_scope),
        (_HI.c.protected, q.protected),
        (_HI.c.is_standard, q.is_standard),
    ):
        if value is not None:
            conds.append(column == value)
    where = and_(*conds)
    # The revision comes with the rows (same round trip, same snapshot) and keys the total.
    items = _described(session, where, q.order_by, q.order == "desc", q.limit, q.offset)
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
        total = session.scalar(select(func.count()).select_from(_HI).where(where)) or 0
        if rev is not None:
            TOTALS.put(key, rev, total)
    return {
        "items": [_answer(ctx, d) for d in items],
        "total": total,
        "limit": q.limit,
        "offset": q.offset,
    }


def list_sub_images(session: Session, ctx: RequestContext, host_image_id: str) -> dict[str, Any]:
    """The sub-images of a visible host image in disk order (F9)."""
    get_visible(session, ctx, host_image_id)
    subs = session.scalars(
        select(Image).where(Image.host_image_id == host_image_id).order_by(Image.idx)
    )
    return {"items": [sub_image_dict(s) for s in subs]}


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
