"""Reading task progress (``GET /tasks/{id}``, ``GET /tasks?target_id=``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.orm import Session

from hostimage.db.models import Project, Task
from hostimage.domain.tenancy import Principal
from hostimage.errors import NotFound
from hostimage.services.context import RequestContext


def task_dict(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "kind": task.kind,
        "target_type": task.target_type,
        "target_id": task.target_id,
        "status": task.status,
        "progress": task.progress,
        "error": task.error,
        "attempts": task.attempts,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
    }


def get_task(session: Session, ctx: RequestContext, task_id: str) -> dict[str, Any]:
    """A task of a project the caller works in or administers (404 otherwise)."""
    task = session.scalar(select(Task).where(Task.id == task_id, _visible(ctx.principal)))
    if task is None:
        raise NotFound(f"Task {task_id} not found.")
    return task_dict(task)


def _visible(p: Principal) -> ColumnElement[bool]:
    """The tasks ``get_task`` shows the caller: every task for a sysadmin; else the tasks of
    the token's current project and of the projects in the domains the caller administers."""
    if p.is_sysadmin:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if p.project_id is not None:
        clauses.append(Task.project_id == p.project_id)
    if p.admin_domain_ids:
        administered = select(Project.id).where(Project.domain_id.in_(p.admin_domain_ids))
        clauses.append(Task.project_id.in_(administered))
    return or_(*clauses) if clauses else false()


def list_tasks(
    session: Session,
    ctx: RequestContext,
    *,
    target_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """The tasks the caller may read (the same ones ``get_task`` answers), newest first;
    with ``target_id`` only those working on that object (a host image, image or server)."""
    where = [_visible(ctx.principal)]
    if target_id is not None:
        where.append(Task.target_id == target_id)
    total = session.scalar(select(func.count()).select_from(Task).where(*where)) or 0
    rows = session.scalars(
        select(Task)
        .where(*where)
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return {
        "items": [task_dict(t) for t in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }
