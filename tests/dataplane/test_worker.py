"""Task claiming: concurrent workers never run one task twice; heartbeats keep a long task
alive; a stale task is requeued."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select, update

from hostimage.db.base import utcnow
from hostimage.db.models import Task
from hostimage.tasks.queue import enqueue
from hostimage.tasks.worker import Worker
from tests.api.conftest import World
from tests.api.helpers_rbac import StatementCounter


def _enqueue(world: World, n: int, kind: str = "unknown_kind") -> list[str]:
    with world.worker.rt.factory() as s:
        ids = [enqueue(s, kind, "test", f"t{i}").id for i in range(n)]
        s.commit()
    return ids


def test_concurrent_workers_claim_each_task_once(world: World) -> None:
    ids = _enqueue(world, 40)
    workers = [Worker(world.worker.rt, worker_id=f"w{i}") for i in range(4)]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    with world.worker.rt.factory() as s:
        tasks = list(s.scalars(select(Task).where(Task.id.in_(ids))))
    assert len(tasks) == 40
    # an unknown kind fails, but each task was claimed and run exactly once
    assert all(t.status == "failed" and t.attempts == 1 for t in tasks)
    assert all("No handler" in (t.error or "") for t in tasks)


def test_stale_running_task_is_requeued_fresh_one_is_not(world: World) -> None:
    stale, fresh = _enqueue(world, 2)
    with world.worker.rt.factory() as s:
        s.execute(
            update(Task)
            .where(Task.id == stale)
            .values(
                status="running",
                attempts=1,
                worker_id="gone",
                heartbeat_at=utcnow() - timedelta(minutes=5),
            )
        )
        s.execute(
            update(Task)
            .where(Task.id == fresh)
            .values(status="running", attempts=1, worker_id="alive", heartbeat_at=utcnow())
        )
        s.commit()
    assert Worker(world.worker.rt).recover_stale() == 1
    with world.worker.rt.factory() as s:
        assert s.get(Task, stale).status == "queued"  # type: ignore[union-attr]
        assert s.get(Task, fresh).status == "running"  # type: ignore[union-attr]


def test_an_idle_worker_polls_without_taking_a_write_lock(world: World) -> None:
    """Nothing queued: one plain read, no transaction (no BEGIN IMMEDIATE on SQLite, whose
    write lock is the whole database's), no row lock; a queued task is then claimed."""
    worker = Worker(world.worker.rt, worker_id="idle")
    world.worker.drain()
    engine = world.worker.rt.factory.kw["bind"]
    with StatementCounter(engine) as counter:
        assert worker.claim() is None
    assert len(counter.statements) == 1, counter.statements
    assert not any(
        word in s.upper() for s in counter.statements for word in ("BEGIN", "FOR UPDATE")
    )
    (task_id,) = _enqueue(world, 1)
    claimed = worker.claim()
    assert claimed is not None and claimed.id == task_id and claimed.status == "running"
