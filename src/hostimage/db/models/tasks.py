"""Background tasks as rows, claimed by workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base, UTCDateTime, new_id, utcnow
from hostimage.db.transitions import compare_and_set, guarded
from hostimage.domain.status import TASK


@guarded(TASK)
class Task(Base):
    """A unit of background work. While it runs, ``claim`` names the one run that holds it:
    every write that run makes about the task and its target checks the claim first."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_created", "status", "created_at"),
        Index("ix_tasks_target", "target_id"),
        Index("ix_tasks_kind_created", "kind", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    payload: Mapped[Any] = mapped_column(JSON, default=dict)
    project_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(default=0)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The token of the run holding the task (NULL while queued or ended).
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # A retried task waits until then (exponential backoff).
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __mapper_args__ = compare_and_set(status)
