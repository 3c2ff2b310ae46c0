"""The worker: claims due tasks and runs them, one at a time, fenced by their claims.

A run's heartbeat is kept by a side thread; a run whose heartbeat stops (its worker died or
lost the database) is taken over by another worker, which retries the task or gives it up.
Failures are retried with backoff when they are transient (:mod:`.retry`); when a task is
given up, its kind's ``give_up`` brings the target to a terminal state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
import traceback
from datetime import timedelta

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_read, begin_write
from hostimage.db.queue import (
    HEARTBEAT_SECONDS,
    STALE_AFTER,
    Claim,
    ClaimLost,
    Heartbeat,
    claim_next,
    enqueue,
    finish,
    last_created,
    pending,
    retry_later,
    running_claims,
    take_over_stale,
)
from hostimage.imaging import guestfish
from hostimage.services.faults import describe
from hostimage.services.host_sync import schedule_syncs
from hostimage.services.runtime import Runtime, TaskRun
from hostimage.tasks.worker.handlers import KINDS, Kind
from hostimage.tasks.worker.retry import RetryPolicy

log = logging.getLogger(__name__)

RECOVERY_SECONDS = 15.0


class Worker:
    """Runs queued tasks one at a time; any number of workers may share one database."""

    def __init__(
        self,
        rt: Runtime,
        worker_id: str | None = None,
        stale_after: timedelta = STALE_AFTER,
        policy: RetryPolicy | None = None,
        gc_interval: timedelta | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        sync_interval: timedelta | None = None,
    ) -> None:
        self.rt = rt
        self.heartbeat_seconds = heartbeat_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.stale_after = stale_after
        self.policy = policy or RetryPolicy()
        self.gc_interval = gc_interval
        self.sync_interval = sync_interval

    def run_once(self) -> bool:
        """Run one due task if there is one; True when a task was run."""
        claim = claim_next(self.rt.factory, self.worker_id, _runnable())
        if claim is None:
            return False
        self.run_claimed(claim)
        return True

    def run_claimed(self, claim: Claim) -> None:
        """Run a task this worker holds, then end it: succeeded, retried later or failed."""
        kind = KINDS.get(claim.kind)
        run = TaskRun(self.rt, claim)
        with Heartbeat(self.rt.factory, claim, self.heartbeat_seconds) as heartbeat:
            run.lost = heartbeat.lost
            try:
                if kind is None or kind.run is None:
                    raise RuntimeError(f"No handler for task kind {claim.kind!r}.")
                kind.run(run)
            except ClaimLost:
                log.warning("task %s (%s): taken from this run; stopped", claim.task_id, claim.kind)
            except Exception as exc:  # a failing handler must not kill the worker
                log.error(
                    "task %s (%s) failed: %s", claim.task_id, claim.kind, traceback.format_exc()
                )
                self._after_failure(run, kind, exc)
            else:
                self._end(run, None)
            finally:
                run.cleanup()

    def _after_failure(self, run: TaskRun, kind: Kind | None, exc: BaseException | None) -> None:
        reason = describe(exc) if exc is not None else "Its worker stopped."
        attempt = run.claim.attempt
        if kind is not None and self.policy.retries(kind, attempt, exc):
            delay = self.policy.delay(kind, attempt)
            with contextlib.suppress(ClaimLost):
                if kind.on_retry is not None:
                    kind.on_retry(run, f"{reason} (retrying in {int(delay.total_seconds())} s)")
                with run.write() as session:
                    retry_later(session, run.claim, reason, delay)
            return
        if exc is not None and kind is not None and kind.rerunnable and attempt > 1:
            reason = f"{reason} (after {attempt} attempts)"
        try:
            if kind is not None and kind.give_up is not None:
                kind.give_up(run, reason)
        except ClaimLost:
            return
        except Exception:  # the task still ends; recovery is not retried forever
            log.error("giving up task %s: %s", run.task_id, traceback.format_exc())
        self._end(run, reason)

    def _end(self, run: TaskRun, error: str | None) -> None:
        with contextlib.suppress(ClaimLost), run.write() as session:
            finish(session, run.claim, error)

    def recover_stale(self) -> int:
        """Take over the tasks whose runs stopped beating: retry each, or give it up (then
        its kind brings the target to a terminal state). Returns how many were found."""
        with self.rt.factory() as session:
            begin_write(session)
            claims = take_over_stale(session, self.worker_id, self.stale_after)
            session.commit()
        for claim in claims:
            log.warning("task %s (%s): its worker stopped beating", claim.task_id, claim.kind)
            kind = KINDS.get(claim.kind)
            run = TaskRun(self.rt, claim)
            with Heartbeat(self.rt.factory, claim, self.heartbeat_seconds) as heartbeat:
                run.lost = heartbeat.lost
                self._after_failure(run, kind, None)
        return len(claims)

    def sweep_scratch(self) -> int:
        """Remove scratch directories of runs that no longer hold their task (this host's
        workers died or lost their tasks); returns how many."""
        with self.rt.factory() as session:
            begin_read(session)
            live = running_claims(session)
        removed = 0
        cutoff = time.time() - self.stale_after.total_seconds()
        for entry in self.rt.work_dir.iterdir():
            task_id, _, tag = entry.name.partition("-")
            if (task_id, tag) in live:
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime > cutoff:
                    continue  # a run that has just begun: it may not be recorded yet
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
        return removed

    def schedule_gc(self) -> bool:
        """Queue a garbage collection when none is pending and the last one is older than
        the interval; True when one was queued."""
        if self.gc_interval is None:
            return False
        with self.rt.factory() as session:
            begin_write(session)
            last = last_created(session, "gc")
            if pending(session, "gc") or (last and utcnow() - last < self.gc_interval):
                session.rollback()
                return False
            enqueue(session, "gc", "storage", "-")
            session.commit()
            return True

    def drain(self, max_tasks: int = 1000) -> int:
        """Run tasks until none is due; returns how many ran."""
        ran = 0
        while ran < max_tasks and self.run_once():
            ran += 1
        return ran

    def housekeeping(self) -> None:
        """What every worker does every 15 s besides running tasks."""
        self.recover_stale()
        # A killed worker's appliance keeps running (and holding its memory) until
        # another worker on the host stops it.
        reaped = guestfish.reap_orphans()
        if reaped:
            log.warning("stopped %d appliance(s) left by a killed worker", reaped)
        self.sweep_scratch()
        self.schedule_gc()
        if self.sync_interval is not None:
            schedule_syncs(self.rt, self.sync_interval)

    def run_forever(self, poll_seconds: float = 0.5) -> None:
        last_housekeeping = 0.0
        while True:
            if time.monotonic() - last_housekeeping > RECOVERY_SECONDS:
                try:
                    self.housekeeping()
                except Exception:  # the database may be down for a while: keep trying
                    log.warning("housekeeping failed", exc_info=True)
                last_housekeeping = time.monotonic()
            try:
                ran = self.run_once()
            except Exception:
                log.warning("claiming a task failed", exc_info=True)
                ran = False
            if not ran:
                time.sleep(poll_seconds)


def _runnable() -> list[str]:
    return [name for name, kind in KINDS.items() if kind.run is not None]
