"""Writing operation-log entries (inside the caller's transaction) and reading them back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from hostimage.db import deferred
from hostimage.db.base import table_of, utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Domain, HostImage, Image, LogEntry, Project
from hostimage.db.scoping import visible
from hostimage.domain.oplog import MAX_LOG_LIMIT, decode_marker, encode_marker
from hostimage.domain.tenancy import View
from hostimage.errors import Conflict, Forbidden, ValidationFailed
from hostimage.services.context import RequestContext


@dataclass(frozen=True)
class LoggedObject:
    """What the log needs to know about the object an entry is about."""

    obj_type: str
    obj_id: str
    obj_name: str
    root_id: str
    domain_id: str | None
    project_id: str | None


def of_host_image(hi: HostImage) -> LoggedObject:
    return LoggedObject("host_image", hi.id, hi.name, hi.id, hi.domain_id, hi.project_id)


def of_image(img: Image) -> LoggedObject:
    root = img.host_image_id or img.id
    return LoggedObject("image", img.id, img.name, root, img.domain_id, img.project_id)


LOG = table_of(LogEntry)


class NameCache:
    """Domain and project names looked up at most once per use case."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._domains: dict[str, str] = {}
        self._projects: dict[str, str] = {}

    def know(self, domain_id: str, domain_name: str, project_id: str, project_name: str) -> None:
        """Remember names read along with an object."""
        self._domains[domain_id] = domain_name
        self._projects[project_id] = project_name

    def domain(self, domain_id: str | None) -> str | None:
        if domain_id is None:
            return None
        if domain_id not in self._domains:
            self._domains[domain_id] = (
                self._session.scalar(select(Domain.name).where(Domain.id == domain_id)) or ""
            )
        return self._domains[domain_id]

    def project(self, project_id: str | None) -> str | None:
        if project_id is None:
            return None
        if project_id not in self._projects:
            self._projects[project_id] = (
                self._session.scalar(select(Project.name).where(Project.id == project_id)) or ""
            )
        return self._projects[project_id]


def record(
    session: Session,
    ctx: RequestContext | None,
    obj: LoggedObject,
    action: str,
    *,
    success: bool = True,
    notes: dict[str, Any] | None = None,
    names: NameCache | None = None,
) -> None:
    """Add one log entry to the session's transaction; it is written when the session
    commits, with the change it records, and dropped if it rolls back."""
    names = names or NameCache(session)
    p = ctx.principal if ctx else None
    entry = dict(
        time=utcnow(),
        obj_type=obj.obj_type,
        obj_id=obj.obj_id,
        obj_name=obj.obj_name,
        root_id=obj.root_id,
        action=action,
        success=success,
        notes=notes or {},
        actor_user_id=p.user_id if p else None,
        actor_user_name=p.user_name if p else "system",
        actor_project_id=p.project_id if p else None,
        actor_project_name=p.project_name if p else None,
        owner_domain_id=obj.domain_id,
        owner_domain_name=names.domain(obj.domain_id),
        owner_project_id=obj.project_id,
        owner_project_name=names.project(obj.project_id),
        request_id=ctx.request_id if ctx else None,
        client_ip=ctx.client_ip if ctx else None,
    )
    deferred.insert_on_commit(session, LOG, entry)


def serialize(entry: LogEntry) -> dict[str, Any]:
    """A log entry as the API answers it."""
    return {
        "id": entry.id,
        "time": entry.time,
        "obj_type": entry.obj_type,
        "obj_id": entry.obj_id,
        "obj_name": entry.obj_name,
        "action": entry.action,
        "success": entry.success,
        "notes": entry.notes,
        "actor_user_id": entry.actor_user_id,
        "actor_user_name": entry.actor_user_name,
        "actor_project_id": entry.actor_project_id,
        "actor_project_name": entry.actor_project_name,
        "owner_domain_id": entry.owner_domain_id,
        "owner_domain_name": entry.owner_domain_name,
        "owner_project_id": entry.owner_project_id,
        "owner_project_name": entry.owner_project_name,
        "request_id": entry.request_id,
        "client_ip": entry.client_ip,
    }


@dataclass(frozen=True)
class LogQuery:
    """Filters shared by log pages and exports."""

    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    success: bool | None = None
    obj_type: str | None = None
    obj_id: str | None = None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LOG_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LOG_LIMIT}.")
    return limit


def filters(q: LogQuery) -> list[ColumnElement[bool]]:
    """SQL conditions for ``q`` (``since`` inclusive, ``until`` exclusive)."""
    conds: list[ColumnElement[bool]] = []
    if q.since is not None:
        conds.append(LogEntry.time >= q.since)
    if q.until is not None:
        conds.append(LogEntry.time < q.until)
    if q.action:
        conds.append(LogEntry.action == q.action)
    if q.success is not None:
        conds.append(LogEntry.success == q.success)
    if q.obj_type:
        conds.append(LogEntry.obj_type == q.obj_type)
    if q.obj_id:
        conds.append(LogEntry.obj_id == q.obj_id)
    return conds


def page(
    session: Session, where: list[ColumnElement[bool]], limit: int, marker: str | None
) -> dict[str, Any]:
    """Newest first, ``limit`` entries older than ``marker``; ``next_marker`` when more remain."""
    check_limit(limit)
    conds = list(where)
    if marker:
        conds.append(LogEntry.id < decode_marker(marker))
    rows = list(
        session.scalars(
            select(LogEntry)
            .where(and_(true(), *conds))
            .order_by(LogEntry.id.desc())
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [serialize(r) for r in rows],
        "next_marker": encode_marker(rows[-1].id) if more and rows else None,
    }


def visible_log_filter(
    session: Session, ctx: RequestContext, view: View | None
) -> ColumnElement[bool]:
    """Entries the caller may read: those of objects it can see, or owned within its reach.

    Entries of objects that no longer exist stay readable to whoever administers (or is a
    member of) their owner project.
    """
    p = ctx.principal
    if p.is_sysadmin and view in (None, View.SYSTEM):
        return true()
    owner: list[ColumnElement[bool]] = []
    if view in (None, View.DOMAIN):
        owner.extend(LogEntry.owner_domain_id == d for d in p.admin_domain_ids)
    if p.works_in_project and p.project_id:
        owner.append(LogEntry.owner_project_id == p.project_id)
    visible_roots = or_(
        LogEntry.root_id.in_(select(HostImage.id).where(visible(HostImage, p))),
        LogEntry.root_id.in_(
            select(Image.id).where(Image.host_image_id.is_(None), visible(Image, p))
        ),
    )
    return or_(*owner, visible_roots) if owner else visible_roots


@contextmanager
def refusals_recorded(
    session: Session,
    ctx: RequestContext,
    obj: LoggedObject,
    action: str,
    names: NameCache | None = None,
) -> Iterator[None]:
    """Add a failed entry for a 403/409 refusal on a visible object to the current write
    transaction, and mark the error ``logged``. For checks made before anything is written,
    so that committing keeps the entry and nothing else."""
    try:
        yield
    except (Forbidden, Conflict) as exc:
        _record_refusal(session, ctx, obj, action, exc, names)
        raise


def _record_refusal(
    session: Session,
    ctx: RequestContext,
    obj: LoggedObject,
    action: str,
    exc: Forbidden | Conflict,
    names: NameCache | None = None,
) -> None:
    notes = {"error": {"code": exc.code, "detail": exc.detail}}
    record(session, ctx, obj, action, success=False, notes=notes, names=names)
    exc.logged = True


@contextmanager
def refusals_logged(
    session: Session, ctx: RequestContext, obj: LoggedObject, action: str
) -> Iterator[None]:
    """Log a 403/409 refusal on a visible object as a failed entry, in its own transaction."""
    try:
        yield
    except (Forbidden, Conflict) as exc:
        session.rollback()
        begin_write(session)  # the entry's name lookups must not upgrade a read transaction
        _record_refusal(session, ctx, obj, action, exc)
        session.commit()
        raise
