"""Enqueue tasks inside the caller's transaction, so nothing is lost between API and queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

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
    """Add a queued task to the session; it is committed with the change that asks for it."""
    task = Task(
        kind=kind,
        target_type=target_type,
        target_id=target_id,
        payload=payload or {},
        project_id=project_id,
    )
    session.add(task)
    session.flush()
    return task
