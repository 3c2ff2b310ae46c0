"""``/tasks``: progress of long operations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from hostimage.api.deps import CtxDep, SessionDep
from hostimage.api.schemas.images import TaskList, TaskOut
from hostimage.services import tasks

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("", response_model=TaskList)
def list_tasks(
    session: SessionDep,
    ctx: CtxDep,
    target_id: Annotated[
        str | None, Query(description="Only tasks working on this host image, image or server.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Tasks the caller may read (as ``GET /tasks/{id}``), newest first."""
    return tasks.list_tasks(session, ctx, target_id=target_id, limit=limit, offset=offset)


@router.get("/{task_id}", response_model=TaskOut)
def get_task(task_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return tasks.get_task(session, ctx, task_id)
