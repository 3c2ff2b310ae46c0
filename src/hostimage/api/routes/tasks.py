"""``/tasks``: progress of long operations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from hostimage.api.deps import Run
from hostimage.api.schemas.common import Offset
from hostimage.api.schemas.images import TaskList, TaskOut
from hostimage.services import tasks

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("", response_model=TaskList)
async def list_tasks(
    run: Run,
    target_id: Annotated[
        str | None, Query(description="Only tasks working on this host image, image or server.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Tasks the caller may read (as ``GET /tasks/{id}``), newest first."""
    return await run(tasks.list_tasks, target_id=target_id, limit=limit, offset=offset)


@router.get("/{task_id}", response_model=TaskOut)
async def get_task(task_id: str, run: Run) -> dict[str, Any]:
    return await run(tasks.get_task, task_id)
