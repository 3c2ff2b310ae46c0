"""Task claiming and fencing: concurrent workers never run one task twice; a stale task is
taken over and retried or given up; a run that lost its claim can write nothing; transient
failures are retried with backoff."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Task
from hostimage.db.queue import ClaimLost, beat, claim_next, enqueue, fence, finish
from hostimage.domain.status import IllegalTransition
from hostimage.tasks.worker import Worker
from hostimage.tasks.worker.handlers import KINDS
from hostimage.tasks.worker.retry import RetryPolicy
from tests.api.conftest import World
from tests.api.helpers_rbac import StatementCounter


def _enqueue(world: World, n: int, kind: str = "delete_server_disks") -> list[str]:
    with world.worker.rt.factory() as s:
        ids = [enqueue(s, kind, "test", f"t{i}", payload={"paths": []}).id for i in range(n)]
        s.commit()
    return ids


def _task(world: World, task_id: str) -> Task:
    with world.worker.rt.factory() as s:
        task = s.get(Task, task_id)
        assert task is not None
        return task


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
    # each task was claimed and run exactly once, and ended without a claim
    assert all(t.status == "succeeded" and t.attempts == 1 for t in tasks)
    assert all(t.claim is None and t.progress == 100 for t in tasks)


def test_unknown_kinds_are_left_for_a_worker_that_knows_them(world: World) -> None:
    (task_id,) = _enqueue(world, 1, kind="from_a_newer_version")
    assert world.worker.drain() == 0
    assert _task(world, task_id).status == "queued"


def test_stale_task_is_taken_over_and_retried_fresh_one_is_not(world: World) -> None:
    stale, fresh = _enqueue(world, 2)
    with world.worker.rt.factory() as s:
        for tid, age, holder in ((stale, 5, "gone"), (fresh, 0, "alive")):
            s.execute(
                update(Task)
                .where(Task.id == tid)
                .values(
                    status="running",
                    attempts=1,
                    worker_id=holder,
                    claim=f"{holder}-claim",
                    heartbeat_at=utcnow() - timedelta(minutes=age),
                )
            )
        s.commit()
    assert Worker(world.worker.rt).recover_stale() == 1
    retried, untouched = _task(world, stale), _task(world, fresh)
    assert retried.status == "queued" and retried.claim is None
    assert retried.run_after is not None and retried.run_after > utcnow()
    assert "stopped" in (retried.error or "")
    assert untouched.status == "running" and untouched.claim == "alive-claim"


def test_a_stale_task_past_its_attempts_is_given_up(world: World) -> None:
    (task_id,) = _enqueue(world, 1, kind="convert")
    with world.worker.rt.factory() as s:
        s.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(
                status="running",
                attempts=5,
                claim="old",
                payload={"format": "raw"},
                heartbeat_at=utcnow() - timedelta(minutes=5),
            )
        )
        s.commit()
    assert Worker(world.worker.rt, policy=RetryPolicy(max_attempts=5)).recover_stale() == 1
    task = _task(world, task_id)
    assert task.status == "failed" and task.claim is None
    assert "stopped" in (task.error or "") and task.finished_at is not None


def test_a_lost_claim_fences_every_write(world: World) -> None:
    (task_id,) = _enqueue(world, 1)
    factory = world.worker.rt.factory
    first = claim_next(factory, "first")
    assert first is not None and first.task_id == task_id
    # its heartbeat was late: the task was taken from it and another worker runs it now
    with factory() as s:
        begin_write(s)
        s.execute(update(Task).where(Task.id == task_id).values(status="queued", claim=None))
        s.commit()
    second = claim_next(factory, "second")
    assert second is not None and second.token != first.token and second.attempt == 2
    assert beat(factory, first) is False
    with factory() as s:
        begin_write(s)
        with pytest.raises(ClaimLost):
            fence(s, first)
        s.rollback()
        begin_write(s)
        assert finish(s, first, "late") is False  # nothing written
        s.commit()
    assert _task(world, task_id).status == "running"
    with factory() as s:
        begin_write(s)
        fence(s, second)
        assert finish(s, second) is True
        s.commit()
    task = _task(world, task_id)
    assert task.status == "succeeded" and task.attempts == 2 and task.error is None


def test_an_illegal_task_transition_raises(world: World) -> None:
    (task_id,) = _enqueue(world, 1)
    world.worker.drain()
    with world.worker.rt.factory() as s:
        task = s.get(Task, task_id)
        assert task is not None and task.status == "succeeded"
        with pytest.raises(IllegalTransition):
            task.status = "running"


def test_transient_failures_are_retried_with_backoff_then_given_up(world: World) -> None:
    """A storage outage during a deletion is retried (deletions never give up); a task of
    another kind is failed after ``max_attempts`` runs, each later than the one before."""
    policy = RetryPolicy(max_attempts=3, base=timedelta(seconds=0))
    worker = Worker(world.worker.rt, policy=policy)
    kind = KINDS["delete_server_disks"]
    assert policy.delay(kind, 1) == timedelta(0)
    slow = RetryPolicy(max_attempts=3, base=timedelta(seconds=5))
    assert [slow.delay(kind, n).total_seconds() for n in (1, 2, 3, 8, 30)] == [
        5,
        10,
        20,
        300,
        300,
    ]
    assert slow.retries(kind, 99, OSError("storage down"))
    assert not slow.retries(KINDS["convert"], 3, OSError("storage down"))
    assert slow.retries(KINDS["convert"], 2, OSError("storage down"))
    assert not slow.retries(KINDS["convert"], 1, ValueError("bad data"))
    assert not slow.retries(KINDS["upload"], 1, None)
    # a real run: the server disk path escapes the disk directory → permanent, failed at once
    with world.worker.rt.factory() as s:
        bad = enqueue(s, "delete_server_disks", "server", "x", payload={"paths": ["../../etc"]})
        s.commit()
    worker.drain()
    task = _task(world, bad.id)
    assert task.status == "failed" and task.attempts == 1 and "escapes" in (task.error or "")


def test_an_idle_worker_polls_without_taking_a_write_lock(world: World) -> None:
    """Nothing queued: one plain read, no transaction (no BEGIN IMMEDIATE on SQLite, whose
    write lock is the whole database's), no row lock; a queued task is then claimed."""
    world.worker.drain()
    engine = world.worker.rt.factory.kw["bind"]
    with StatementCounter(engine) as counter:
        assert claim_next(world.worker.rt.factory, "idle") is None
    assert len(counter.statements) == 1, counter.statements
    assert not any(
        word in s.upper() for s in counter.statements for word in ("BEGIN", "FOR UPDATE")
    )
    (task_id,) = _enqueue(world, 1)
    claimed = claim_next(world.worker.rt.factory, "idle")
    assert claimed is not None and claimed.task_id == task_id
    assert _task(world, task_id).status == "running"
