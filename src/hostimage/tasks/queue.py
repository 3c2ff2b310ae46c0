"""Enqueue tasks inside the caller's transaction, so nothing is lost between API and queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hostimage.db.base import new_id, utcnow
from hostimage.db.models import Task


def enqueue(
    session: Session,
    kind: str,
    target_type: str,
    target_id: str,
    *,
    payload: dict[str, Any] | None = None,
    project_id: str | None = None,
) -> Task:
    """Add a queued task to the session; it is committed with the change that asks for it.

    Every column is set here, so that the id is known without a flush (a batch inserts all
    its tasks in one statement).
    """
    task = Task(
        id=new_id(),
        status="queued",
        progress=0,
        attempts=0,
        created_at=utcnow(),
        kind=kind,
        target_type=target_type,
        target_id=target_id,
        payload=payload or {},
        project_id=project_id,
    )
    session.add(task)
    return task
