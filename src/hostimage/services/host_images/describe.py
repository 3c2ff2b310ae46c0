"""How a host image is shown: its columns, its sub-images and share targets as JSON
(one statement for a page, or with the lock of a write), and the row → API dict."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Select, case, select
from sqlalchemy.orm import Session

from hostimage.db import revision
from hostimage.db.aggregate import json_rows, rows_of, timestamp_of
from hostimage.db.base import table_of
from hostimage.db.models import Domain, HostImage, Image, Project, Share
from hostimage.domain.permissions import Action, allowed
from hostimage.domain.sharing import Owner
from hostimage.domain.status import ImageStatus, delete_refusal
from hostimage.services.context import RequestContext

HI = table_of(HostImage)
IMG = table_of(Image)
_SHARE = Share.__table__
# Rows are read as plain tuples (no ORM objects): a list page is the hottest read there is.
_SUB_COLUMNS = (
    IMG.c.id,
    IMG.c.name,
    IMG.c.idx.label("index"),
    IMG.c.role,
    IMG.c.disk_format,
    IMG.c.size,
    IMG.c.virtual_size,
    IMG.c.checksum,
    IMG.c.status,
    IMG.c.status_reason,
    IMG.c.description,
    IMG.c.created_at,
    IMG.c.project_id,
)
_SUB_FIELDS = tuple(c.key for c in _SUB_COLUMNS)
_HI_FIELDS = tuple(c.key for c in HI.columns)


def sub_images_of(session: Session, host_image_id: str) -> list[dict[str, Any]]:
    """A host image's sub-images as they appear inside it, in disk order."""
    rows = session.execute(
        select(*_SUB_COLUMNS).where(IMG.c.host_image_id == host_image_id).order_by(IMG.c.idx)
    )
    return [dict(zip(_SUB_FIELDS, row, strict=True)) for row in rows]


_DOMAIN, _PROJECT = Domain.__table__.c, Project.__table__.c
_ROW_FIELDS = (*_HI_FIELDS, "domain_name", "project_name")


@lru_cache(maxsize=4)
def json_columns(dialect: str) -> tuple[Any, Any]:
    """A host image's sub-images and share targets (with names), each as one JSON column
    correlated to ``host_images``; read back with :func:`shown_parts`. Built once per dialect
    (building a statement costs more than running this part of it)."""
    subs = select(json_rows(dialect, *_SUB_COLUMNS)).where(IMG.c.host_image_id == HI.c.id)
    # One index probe per share row for its name (a join made the planner hash every project).
    name = case(
        (
            _SHARE.c.target_kind == "project",
            select(_PROJECT.name).where(_PROJECT.id == _SHARE.c.target_id).scalar_subquery(),
        ),
        else_=select(_DOMAIN.name).where(_DOMAIN.id == _SHARE.c.target_id).scalar_subquery(),
    )
    shares = select(json_rows(dialect, _SHARE.c.target_kind, _SHARE.c.target_id, name)).where(
        _SHARE.c.resource_id == HI.c.id
    )
    return subs.scalar_subquery(), shares.scalar_subquery()


@lru_cache(maxsize=4)
def _description(dialect: str) -> Select[Any]:
    return select(
        *HI.columns,
        _DOMAIN.name,
        _PROJECT.name,
        revision.current_for(dialect),
        *json_columns(dialect),
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


def described(
    session: Session,
    where: Any,
    order_by: str | None = None,
    descending: bool = True,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Host images matching ``where``, as the API shows them (before :func:`answer`) plus the
    catalogue revision (``revision``), ordered by ``order_by`` then id: one statement for any
    page."""
    dialect = session.get_bind().dialect.name
    ordering = _ordered(HI.c, order_by, descending)
    described = _description(dialect)
    if dialect == "sqlite":
        # SQLite would build the JSON for every match before sorting (350 ms for a domain
        # view at 100,000 images): the page's ids first, then the rest for those rows.
        page = select(HI.c.id).where(where).order_by(*ordering).limit(limit).offset(offset)
        ids = page.subquery("page")
        described = described.select_from(ids).join(HI, HI.c.id == ids.c.id)
    else:
        # PostgreSQL evaluates select-list subqueries after the sort and the limit.
        described = described.where(where).limit(limit).offset(offset)
    rows = session.execute(
        described.join(Domain.__table__, _DOMAIN.id == HI.c.domain_id)
        .join(Project.__table__, _PROJECT.id == HI.c.project_id)
        .order_by(*ordering),
        execution_options=_BY_POSITION,
    ).all()
    return [_item(r) for r in rows]


def _item(row: Any) -> dict[str, Any]:
    d = dict(zip(_ROW_FIELDS, row[: len(_ROW_FIELDS)], strict=True))
    d["revision"] = row[-3]
    d.update(shown_parts(row[-2], row[-1]))
    return d


def shown_parts(subs_json: Any, shares_json: Any) -> dict[str, Any]:
    """The ``sub_images`` and share-target fields from the :func:`json_columns` values."""
    subs = [dict(zip(_SUB_FIELDS, r, strict=True)) for r in rows_of(subs_json)]
    for sub in subs:
        sub["created_at"] = timestamp_of(sub["created_at"])
    subs.sort(key=lambda sub: sub["index"] if sub["index"] is not None else -1)
    projects: list[dict[str, str]] = []
    domains: list[dict[str, str]] = []
    for kind, tid, name in sorted(rows_of(shares_json), key=lambda t: t[1]):
        (projects if kind == "project" else domains).append({"id": tid, "name": name or ""})
    return {
        "sub_images": subs,
        "shared_project_ids": [p["id"] for p in projects],
        "shared_domain_ids": [x["id"] for x in domains],
        "shared_projects": projects,
        "shared_domains": domains,
    }


def of_loaded(
    hi: HostImage, domain_name: str, project_name: str, parts: dict[str, Any]
) -> dict[str, Any]:
    """A host image a use case holds (as changed and flushed), with its owner's names and
    the :func:`shown_parts` read with its lock: what :func:`described` would read now."""
    d = {key: getattr(hi, key) for key in _HI_FIELDS}
    d["domain_name"], d["project_name"] = domain_name, project_name
    d.update(parts)
    return d


def answer(ctx: RequestContext, d: dict[str, Any]) -> dict[str, Any]:
    """A described host image as the caller sees it: can it be deleted, and why not."""
    d.pop("revision", None)
    refusal = delete_refusal(d["protected"], ImageStatus(d["status"]))
    if refusal is None and not allowed(
        ctx.principal, Action.DELETE, Owner(domain_id=d["domain_id"], project_id=d["project_id"])
    ):
        refusal = ("forbidden", "Your role does not allow deleting this image.")
    d["can_delete"] = refusal is None
    d["delete_fail_reason"] = refusal[1] if refusal else None
    return d
