"""Claiming and running tasks: SKIP LOCKED on PostgreSQL, an IMMEDIATE transaction on SQLite.

A running task's heartbeat is refreshed by a side thread; a task whose heartbeat stops
(its worker died) is requeued, or failed with a reason after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from datetime import timedelta

from sqlalchemy import select, update

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_read, begin_write
from hostimage.db.models import Task
from hostimage.imaging import guestfish
from hostimage.services.runtime import Runtime
from hostimage.tasks.worker.handlers import GIVE_UP, HANDLERS

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=60)


class Worker:
    """Runs queued tasks one at a time; any number of workers may share one database."""

    def __init__(
        self, rt: Runtime, worker_id: str | None = None, stale_after: timedelta = STALE_AFTER
    ) -> None:
        self.rt = rt
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.stale_after = stale_after

    def claim(self) -> Task | None:
        """Take the oldest queued task, marking it running under this worker."""
        with self.rt.factory() as session:
            # An idle worker asks twice a second. It looks without a transaction first, so
            # that it takes no write lock (on SQLite, the whole database's, which every API
            # write would then wait for) while nothing is queued.
            begin_read(session)
            if session.scalar(select(Task.id).where(Task.status == "queued").limit(1)) is None:
                return None
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
            task.started_at, task.heartbeat_at, task.error = now, now, None
            task.attempts += 1
            session.commit()
            return task

    def _beat(self, task_id: str, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                with self.rt.factory() as session:
                    begin_write(session)
                    session.execute(
                        update(Task)
                        .where(Task.id == task_id, Task.worker_id == self.worker_id)
                        .values(heartbeat_at=utcnow())
                    )
                    session.commit()
            except Exception:  # a missed beat is retried; it must not kill the task
                log.warning("heartbeat of task %s failed", task_id, exc_info=True)

    def run_once(self) -> bool:
        """Run one task if there is one; True when a task was run."""
        task = self.claim()
        if task is None:
            return False
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(task.id, stop), daemon=True)
        beat.start()
        try:
            handler = HANDLERS.get(task.kind)
            if handler is None:
                raise RuntimeError(f"No handler for task kind {task.kind!r}.")
            handler(self.rt, task)
        except Exception as exc:  # a failing handler must not kill the worker
            log.error("task %s (%s) failed: %s", task.id, task.kind, traceback.format_exc())
            self._finish(task.id, "failed", str(exc) or type(exc).__name__)
        else:
            self._finish(task.id, "succeeded", None)
        finally:
            stop.set()
            beat.join()
        return True

    def _finish(self, task_id: str, status: str, error: str | None) -> None:
        with self.rt.factory() as session:
            begin_write(session)
            values: dict[str, object] = {"status": status, "error": error, "finished_at": utcnow()}
            if status == "succeeded":
                values["progress"] = 100
            session.execute(update(Task).where(Task.id == task_id).values(**values))
            session.commit()

    def recover_stale(self) -> int:
        """Requeue (or fail, after MAX_ATTEMPTS) running tasks whose worker stopped beating."""
        gave_up: list[Task] = []
        with self.rt.factory() as session:
            begin_write(session)
            limit = utcnow() - self.stale_after
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
                    task.error = (
                        f"Its worker {task.worker_id} stopped {task.attempts} times; gave up."
                    )
                    gave_up.append(task)
                else:
                    task.status, task.worker_id = "queued", None
                    log.warning("requeued task %s: worker stopped", task.id)
            session.commit()
        for task in gave_up:
            cleanup = GIVE_UP.get(task.kind)
            if cleanup is not None:
                cleanup(self.rt, task)
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
            if time.monotonic() - last_recovery > 15:
                self.recover_stale()
                # A killed worker's appliance keeps running (and holding its memory) until
                # another worker on the host stops it.
                reaped = guestfish.reap_orphans()
                if reaped:
                    log.warning("stopped %d appliance(s) left by a killed worker", reaped)
                last_recovery = time.monotonic()
            if not self.run_once():
                time.sleep(poll_seconds)
