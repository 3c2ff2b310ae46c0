"""The periodic garbage collection, run by a worker as a task of kind ``gc``."""

from __future__ import annotations

from datetime import timedelta

from hostimage.services.gc import collect
from hostimage.services.runtime import TaskRun


def run_gc(run: TaskRun) -> None:
    """Sweep the storage (:func:`hostimage.services.gc.collect`) with the configured grace;
    the task's error lists what could not be removed (the next run tries again)."""
    report = collect(
        run.rt.factory,
        run.rt.storage,
        grace=timedelta(hours=run.rt.gc_grace_hours),
        dry_run=False,
    )
    run.progress(100)
    if report.error_count:
        raise GcIncomplete(report.summary())


class GcIncomplete(Exception):
    """Some objects could not be removed this time."""
