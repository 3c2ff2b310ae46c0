"""Claiming and running tasks: SKIP LOCKED on PostgreSQL, an IMMEDIATE transaction on SQLite."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Task
from hostimage.storage import Storage
from hostimage.tasks.worker.handlers import HANDLERS

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
STALE_AFTER = timedelta(seconds=60)


class Worker:
    """Runs queued tasks one at a time; several workers may share one database."""

    def __init__(
        self, factory: sessionmaker[Session], storage: Storage, worker_id: str | None = None
    ) -> None:
        self.factory = factory
        self.storage = storage
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"

    def claim(self, session: Session) -> Task | None:
        """Take the oldest queued task, marking it running under this worker."""
        begin_write(session)
        task = session.scalar(
            select(Task)
            .where(Task.status == "queued")
            .order_by(Task.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if task is None:
            session.rollback()
            return None
        now = utcnow()
        task.status, task.worker_id = "running", self.worker_id
        task.started_at, task.heartbeat_at = now, now
        task.attempts += 1
        session.commit()
        return task

    def run_once(self) -> bool:
        """Run one task if there is one; True when a task was run."""
        with self.factory() as session:
            task = self.claim(session)
            if task is None:
                return False
            task_id, kind = task.id, task.kind
            handler = HANDLERS.get(kind)
            try:
                if handler is None:
                    raise RuntimeError(f"No handler for task kind {kind!r}.")
                handler(session, self.storage, task)
            except Exception as exc:  # a failing handler must not kill the worker
                session.rollback()
                log.error("task %s (%s) failed: %s", task_id, kind, traceback.format_exc())
                self._finish(session, task_id, "failed", str(exc) or type(exc).__name__)
            else:
                self._finish(session, task_id, "succeeded", None)
            return True

    def _finish(self, session: Session, task_id: str, status: str, error: str | None) -> None:
        begin_write(session)
        values: dict[str, object] = {"status": status, "error": error, "finished_at": utcnow()}
        if status == "succeeded":
            values["progress"] = 100
        session.execute(update(Task).where(Task.id == task_id).values(**values))
        session.commit()

    def recover_stale(self) -> int:
        """Requeue (or fail, after MAX_ATTEMPTS) running tasks whose worker stopped beating."""
        with self.factory() as session:
            begin_write(session)
            limit = utcnow() - STALE_AFTER
            stale = list(
                session.scalars(
                    select(Task)
                    .where(Task.status == "running", Task.heartbeat_at < limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for task in stale:
                if task.attempts >= MAX_ATTEMPTS:
                    task.status, task.finished_at = "failed", utcnow()
                    task.error = f"The worker {task.worker_id} stopped; gave up after retries."
                else:
                    task.status, task.worker_id = "queued", None
            session.commit()
            return len(stale)

    def drain(self, max_tasks: int = 1000) -> int:
        """Run tasks until none is queued; returns how many ran."""
        ran = 0
        while ran < max_tasks and self.run_once():
            ran += 1
        return ran

    def run_forever(self, poll_seconds: float = 0.5) -> None:
        last_recovery = 0.0
        while True:
            if time.monotonic() - last_recovery > 30:
                self.recover_stale()
                last_recovery = time.monotonic()
            if not self.run_once():
                time.sleep(poll_seconds)
