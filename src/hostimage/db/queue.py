"""The task queue: tasks as rows, enqueued in the caller's transaction, claimed by one run at
a time and fenced by that claim.

A claim is a random token written on the task when a run takes it. Every write the run makes
about its task and target begins with :func:`fence`, which locks the task row while the token
is still the task's and raises :class:`ClaimLost` otherwise: a run whose heartbeat was late
and whose task was handed to another worker can no longer change anything.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from hostimage.db.base import new_id, utcnow
from hostimage.db.engine import begin_read, begin_write
from hostimage.db.models import Task
from hostimage.db.transitions import cas
from hostimage.domain.status import TaskStatus

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=60)


class ClaimLost(Exception):
    """The run no longer holds its task (it was handed to another run, or ended)."""


@dataclass(frozen=True)
class Claim:
    """One run's hold on a task, and what the run needs to know about the task."""

    task_id: str
    token: str
    attempt: int
    kind: str
    target_type: str
    target_id: str
    payload: dict[str, Any]
    project_id: str | None

    @classmethod
    def of(cls, task: Task) -> Claim:
        assert task.claim is not None
        return cls(
            task.id,
            task.claim,
            task.attempts,
            task.kind,
            task.target_type,
            task.target_id,
            dict(task.payload or {}),
            task.project_id,
        )

    @property
    def short(self) -> str:
        """A short tag of this run, unique per task: names its scratch space and objects."""
        return self.token[:12]


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
        status=TaskStatus.QUEUED.value,
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


def start_claimed(
    session: Session,
    kind: str,
    target_type: str,
    target_id: str,
    holder: str,
    *,
    project_id: str | None = None,
) -> Claim:
    """Add a task that is running from the start, held by the caller (work done in a request,
    such as an upload): its heartbeat must be kept (:class:`Heartbeat`) like a worker's."""
    now = utcnow()
    task = Task(
        id=new_id(),
        status=TaskStatus.RUNNING.value,
        progress=0,
        attempts=1,
        created_at=now,
        started_at=now,
        heartbeat_at=now,
        kind=kind,
        target_type=target_type,
        target_id=target_id,
        payload={},
        project_id=project_id,
        worker_id=holder[:64],
        claim=secrets.token_hex(16),
    )
    session.add(task)
    return Claim.of(task)


def _due() -> Any:
    return or_(Task.run_after.is_(None), Task.run_after <= utcnow())


def claim_next(
    factory: sessionmaker[Session], holder: str, kinds: Collection[str] | None = None
) -> Claim | None:
    """Take the oldest queued task that is due (of ``kinds``, if given) for a new run."""
    with factory() as session:
        # An idle worker asks twice a second. It looks without a transaction first, so that
        # it takes no write lock (on SQLite, the whole database's) while nothing is queued.
        begin_read(session)
        look = select(Task.id).where(Task.status == TaskStatus.QUEUED.value, _due())
        if kinds is not None:
            look = look.where(Task.kind.in_(kinds))
        if session.scalar(look.limit(1)) is None:
            return None
        begin_write(session)
        q = select(Task).where(Task.status == TaskStatus.QUEUED.value, _due())
        if kinds is not None:
            q = q.where(Task.kind.in_(kinds))
        task = session.scalar(
            q.order_by(Task.created_at).limit(1).with_for_update(skip_locked=True)
        )
        if task is None:
            session.rollback()
            return None
        now = utcnow()
        task.status = TaskStatus.RUNNING.value
        task.claim, task.worker_id = secrets.token_hex(16), holder[:64]
        task.started_at, task.heartbeat_at, task.run_after = now, now, None
        task.attempts += 1
        session.commit()
        return Claim.of(task)


def fence(session: Session, claim: Claim) -> None:
    """Lock the task row for the rest of the session's write transaction, if ``claim`` still
    holds it; else raise :class:`ClaimLost`. Call first in every write a run makes."""
    held = session.scalar(
        select(Task.id)
        .where(
            Task.id == claim.task_id,
            Task.claim == claim.token,
            Task.status == TaskStatus.RUNNING.value,
        )
        .with_for_update()
    )
    if held is None:
        raise ClaimLost(f"Task {claim.task_id} is no longer held by this run.")


def _held(claim: Claim) -> tuple[Any, ...]:
    return (Task.claim == claim.token,)


def beat(factory: sessionmaker[Session], claim: Claim, progress: int | None = None) -> bool:
    """Refresh the task's heartbeat (and raise its progress, never lowering it); False when
    the claim is lost."""
    with factory() as session:
        begin_write(session)
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        where = [
            Task.id == claim.task_id,
            *_held(claim),
            Task.status == TaskStatus.RUNNING.value,
        ]
        result: Any = session.execute(update(Task).where(*where).values(**values))
        held = bool(result.rowcount)
        if held and progress is not None:
            session.execute(
                update(Task).where(*where, Task.progress < progress).values(progress=progress)
            )
        session.commit()
        return held


def finish(session: Session, claim: Claim, error: str | None = None) -> bool:
    """End the task: ``succeeded``, or ``failed`` with ``error``; in the session's transaction.
    False (and nothing written) when the claim is lost."""
    status = TaskStatus.FAILED if error is not None else TaskStatus.SUCCEEDED
    values: dict[str, Any] = {"error": _clip(error), "finished_at": utcnow(), "claim": None}
    if error is None:
        values["progress"] = 100
    return (
        cas(
            session,
            Task,
            [claim.task_id],
            status,
            expected=[TaskStatus.RUNNING],
            where=_held(claim),
            **values,
        )
        == 1
    )


def retry_later(session: Session, claim: Claim, error: str, delay: timedelta) -> bool:
    """Put the task back in the queue, due after ``delay``, with the error of this run;
    False when the claim is lost."""
    return (
        cas(
            session,
            Task,
            [claim.task_id],
            TaskStatus.QUEUED,
            expected=[TaskStatus.RUNNING],
            where=_held(claim),
            error=_clip(error),
            claim=None,
            worker_id=None,
            run_after=utcnow() + delay,
        )
        == 1
    )


def take_over_stale(session: Session, holder: str, stale_after: timedelta) -> list[Claim]:
    """Claim every running task whose heartbeat is older than ``stale_after`` for ``holder``
    (its run stopped beating: its worker died, or lost the database); in the session's
    write transaction. The old runs' claims are void from the commit on."""
    limit = utcnow() - stale_after
    tasks = list(
        session.scalars(
            select(Task)
            .where(Task.status == TaskStatus.RUNNING.value, Task.heartbeat_at < limit)
            .with_for_update(skip_locked=True)
        )
    )
    now = utcnow()
    for task in tasks:
        task.claim, task.heartbeat_at = secrets.token_hex(16), now
        task.error = _clip(f"Its worker {task.worker_id} stopped (no heartbeat since {limit}).")
        task.worker_id = holder[:64]
    return [Claim.of(t) for t in tasks]


def running_claims(session: Session) -> set[tuple[str, str]]:
    """``(task id, short claim tag)`` of every running task (to tell live scratch space from
    that of ended runs)."""
    rows = session.execute(
        select(Task.id, Task.claim).where(Task.status == TaskStatus.RUNNING.value)
    )
    return {(tid, token[:12]) for tid, token in rows if token}


def last_created(session: Session, kind: str) -> datetime | None:
    """When the newest task of ``kind`` was created (None if there never was one)."""
    return session.scalar(
        select(Task.created_at).where(Task.kind == kind).order_by(Task.created_at.desc()).limit(1)
    )


def pending(session: Session, kind: str) -> bool:
    """Whether a task of ``kind`` is queued or running."""
    return (
        session.scalar(
            select(Task.id)
            .where(
                Task.kind == kind,
                Task.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]),
            )
            .limit(1)
        )
        is not None
    )


def pending_for(session: Session, kind: str, target_id: str) -> str | None:
    """The id of a queued or running task of ``kind`` on ``target_id``, if any."""
    return session.scalar(
        select(Task.id)
        .where(
            Task.kind == kind,
            Task.target_id == target_id,
            Task.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]),
        )
        .limit(1)
    )


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:2000]


class Heartbeat:
    """Keeps a claim's heartbeat from a side thread while the run works; ``lost`` is set as
    soon as a beat finds the claim gone. A beat that fails (database unreachable) is retried:
    it never stops the run by itself."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        claim: Claim,
        every: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.factory, self.claim, self.every = factory, claim, every
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not beat(self.factory, self.claim):
                    log.warning("task %s: claim lost, stopping its run", self.claim.task_id)
                    self.lost.set()
                    return
            except Exception:  # a missed beat is retried; it must not kill the run
                log.warning("heartbeat of task %s failed", self.claim.task_id, exc_info=True)
