"""``/tasks/{id}``: progress of long operations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hostimage.api.deps import CtxDep, SessionDep
from hostimage.api.schemas.images import TaskOut
from hostimage.services import tasks

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("/{task_id}", response_model=TaskOut)
def get_task(task_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return tasks.get_task(session, ctx, task_id)
