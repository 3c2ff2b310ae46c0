"""Reading host images: details, the list in three views, sub-images, format copies."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from hostimage.db import revision
from hostimage.db.models import Domain, FormatCopy, HostImage, Image, Project, Share
from hostimage.db.scoping import view_filter, view_key
from hostimage.domain.permissions import Action, allowed
from hostimage.domain.status import ImageStatus, delete_refusal
from hostimage.domain.tenancy import View
from hostimage.errors import ValidationFailed
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import get_visible, owner_of
from hostimage.services.host_images.totals import TOTALS
from hostimage.services.oplog import NameCache

ORDERABLE = {
    "name": HostImage.name,
    "created_at": HostImage.created_at,
    "updated_at": HostImage.updated_at,
    "size": HostImage.size,
    "status": HostImage.status,
    "os_type": HostImage.os_type,
    "disk_format": HostImage.disk_format,
    "share_scope": HostImage.share_scope,
}


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


def serialize_many(
    session: Session, ctx: RequestContext, rows: list[tuple[HostImage, str, str]]
) -> list[dict[str, Any]]:
    """Host images with names, sub-images and share targets, in three queries for any page."""
    ids = [hi.id for hi, _, _ in rows]
    subs: dict[str, list[Image]] = defaultdict(list)
    shared_projects: dict[str, list[dict[str, str]]] = defaultdict(list)
    shared_domains: dict[str, list[dict[str, str]]] = defaultdict(list)
    if ids:
        for img in session.scalars(
            select(Image).where(Image.host_image_id.in_(ids)).order_by(Image.idx)
        ):
            subs[img.host_image_id or ""].append(img)
        share_rows = session.execute(
            select(Share.resource_id, Share.target_kind, Share.target_id, Project.name, Domain.name)
            .outerjoin(Project, and_(Share.target_kind == "project", Project.id == Share.target_id))
            .outerjoin(Domain, and_(Share.target_kind == "domain", Domain.id == Share.target_id))
            .where(Share.resource_id.in_(ids))
            .order_by(Share.target_id)
        )
        for rid, kind, tid, pname, dname in share_rows:
            if kind == "project":
                shared_projects[rid].append({"id": tid, "name": pname or ""})
            else:
                shared_domains[rid].append({"id": tid, "name": dname or ""})
    return [
        _host_image_dict(
            ctx, hi, dname, pname, subs[hi.id], shared_projects[hi.id], shared_domains[hi.id]
        )
        for hi, dname, pname in rows
    ]


def _host_image_dict(
    ctx: RequestContext,
    hi: HostImage,
    domain_name: str,
    project_name: str,
    subs: list[Image],
    shared_projects: list[dict[str, str]],
    shared_domains: list[dict[str, str]],
) -> dict[str, Any]:
    refusal = delete_refusal(hi.protected, ImageStatus(hi.status))
    if refusal is None and not allowed(ctx.principal, Action.DELETE, owner_of(hi)):
        refusal = ("forbidden", "Your role does not allow deleting this image.")
    return {
        "id": hi.id,
        "name": hi.name,
        "description": hi.description,
        "status": hi.status,
        "status_reason": hi.status_reason,
        "domain_id": hi.domain_id,
        "domain_name": domain_name,
        "project_id": hi.project_id,
        "project_name": project_name,
        "share_scope": hi.share_scope,
        "shared_project_ids": [p["id"] for p in shared_projects],
        "shared_domain_ids": [d["id"] for d in shared_domains],
        "shared_projects": shared_projects,
        "shared_domains": shared_domains,
        "protected": hi.protected,
        "is_standard": hi.is_standard,
        "external_id": hi.external_id,
        "os_type": hi.os_type,
        "os_distribution": hi.os_distribution,
        "os_version": hi.os_version,
        "os_arch": hi.os_arch,
        "os_language": hi.os_language,
        "disk_driver": hi.disk_driver,
        "net_driver": hi.net_driver,
        "min_ram_mb": hi.min_ram_mb,
        "hypervisor": hi.hypervisor,
        "boot_mode": hi.boot_mode,
        "disk_format": hi.disk_format,
        "size": hi.size,
        "virtual_size": hi.virtual_size,
        "min_disk_mb": hi.min_disk_mb,
        "sub_image_count": hi.sub_image_count,
        "sub_images": [sub_image_dict(s) for s in subs],
        "source_server_id": hi.source_server_id,
        "created_at": hi.created_at,
        "updated_at": hi.updated_at,
        "can_delete": refusal is None,
        "delete_fail_reason": refusal[1] if refusal else None,
    }


def _with_names(q: Select[tuple[HostImage]]) -> Select[tuple[HostImage, str, str]]:
    return (
        q.add_columns(Domain.name, Project.name)
        .join(Domain, Domain.id == HostImage.domain_id)
        .join(Project, Project.id == HostImage.project_id)
    )


def get_host_image(session: Session, ctx: RequestContext, host_image_id: str) -> dict[str, Any]:
    """Details of a visible host image (404 otherwise)."""
    hi = get_visible(session, ctx, host_image_id)
    return detail(session, ctx, hi)


def detail(
    session: Session, ctx: RequestContext, hi: HostImage, names: NameCache | None = None
) -> dict[str, Any]:
    """Serialize one host image already loaded by a use case, with what the use case has not
    flushed yet; owner names from ``names`` when the use case has them."""
    session.flush()
    if names is not None:
        domain_name, project_name = names.domain(hi.domain_id), names.project(hi.project_id)
    else:
        project_name, domain_name = session.execute(
            select(Project.name, Domain.name)
            .join(Domain, Domain.id == Project.domain_id)
            .where(Project.id == hi.project_id)
        ).one()
    return serialize_many(session, ctx, [(hi, domain_name or "", project_name or "")])[0]


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
        conds.append(contains(HostImage.name, q.name))
    for column, value in (
        (HostImage.status, q.status),
        (HostImage.project_id, q.project_id),
        (HostImage.domain_id, q.domain_id),
        (HostImage.os_type, q.os_type),
        (HostImage.share_scope, q.share_scope),
        (HostImage.protected, q.protected),
        (HostImage.is_standard, q.is_standard),
    ):
        if value is not None:
            conds.append(column == value)
    where = and_(*conds)
    col = ORDERABLE[q.order_by]
    ordering = (
        (col.desc(), HostImage.id.desc()) if q.order == "desc" else (col.asc(), HostImage.id.asc())
    )
    # The revision comes with the rows (same round trip, same snapshot) and keys the total.
    rows = session.execute(
        _with_names(select(HostImage))
        .add_columns(revision.current(session))
        .where(where)
        .order_by(*ordering)
        .limit(q.limit)
        .offset(q.offset)
    ).all()
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
    rev = rows[0][3] if rows else None
    total = TOTALS.get(key, rev) if rev is not None else None
    if total is None:
        total = session.scalar(select(func.count()).select_from(HostImage).where(where)) or 0
        if rev is not None:
            TOTALS.put(key, rev, total)
    return {
        "items": serialize_many(
            session, ctx, [cast(tuple[HostImage, str, str], tuple(r[:3])) for r in rows]
        ),
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
