"""Reading task progress (``GET /tasks/{id}``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hostimage.db.models import Project, Task
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
    task = session.get(Task, task_id)
    p = ctx.principal
    if task is not None and not p.is_sysadmin and task.project_id != p.project_id:
        project = session.get(Project, task.project_id) if task.project_id else None
        if project is None or not p.is_domain_admin(project.domain_id):
            task = None
    if task is None:
        raise NotFound(f"Task {task_id} not found.")
    return task_dict(task)
