"""What worker-side use cases need besides a session: sessions of their own, storage, dirs,
and the run of the task they work for."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from hostimage.db.engine import begin_write
from hostimage.db.queue import Claim, ClaimLost, beat, fence
from hostimage.imaging.limits import Limits
from hostimage.settings import Settings
from hostimage.storage import Storage


@dataclass(frozen=True)
class Runtime:
    factory: sessionmaker[Session]
    storage: Storage
    disks_dir: Path
    work_dir: Path
    parallelism: int = 3
    qemu_limits: Limits = field(default_factory=Limits)
    gc_grace_hours: float = 24.0
    # libvirt hosts: how long a graceful shutdown may take before the domain is destroyed.
    shutdown_seconds: float = 60.0

    def disk_path(self, relative: str) -> Path:
        """The absolute path of a server disk; relative paths never leave ``disks_dir``."""
        path = (self.disks_dir / relative).resolve()
        if self.disks_dir.resolve() not in path.parents:
            raise ValueError(f"Disk path escapes the disk directory: {relative!r}")
        return path


@dataclass
class TaskRun:
    """One run of a task: its claim, its own scratch directory, and whether it was lost.

    Handlers write through :meth:`write`, which fences every transaction with the claim, and
    call :meth:`check` between long steps: a run that lost its task stops with
    :class:`ClaimLost` and changes nothing more.
    """

    rt: Runtime
    claim: Claim
    lost: threading.Event = field(default_factory=threading.Event)

    @property
    def task_id(self) -> str:
        return self.claim.task_id

    @property
    def work(self) -> Path:
        """This run's scratch directory: never shared with another run of the same task."""
        return self.rt.work_dir / f"{self.claim.task_id}-{self.claim.short}"

    def check(self) -> None:
        """Raise :class:`ClaimLost` when the heartbeat found the task taken from this run."""
        if self.lost.is_set():
            raise ClaimLost(f"Task {self.claim.task_id} was taken from this run.")

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction fenced by the claim (:func:`hostimage.db.queue.fence`),
        committed when the block ends without an error."""
        self.check()
        with self.rt.factory() as session:
            begin_write(session)
            fence(session, self.claim)
            yield session
            session.commit()

    def progress(self, percent: float) -> None:
        """Record the task's progress (0–100, never backwards) with a heartbeat."""
        self.check()
        if not beat(self.rt.factory, self.claim, max(0, min(100, int(percent)))):
            self.lost.set()
            self.check()

    def cleanup(self) -> None:
        """Remove this run's scratch directory."""
        shutil.rmtree(self.work, ignore_errors=True)


def runtime_from_settings(
    settings: Settings, factory: sessionmaker[Session], storage: Storage
) -> Runtime:
    """The runtime a worker builds from configuration (directories created on demand)."""
    disks, work = settings.effective_disks_dir, settings.effective_work_dir
    disks.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    return Runtime(
        factory=factory,
        storage=storage,
        disks_dir=disks,
        work_dir=work,
        parallelism=settings.save_parallelism,
        qemu_limits=Limits(
            cpu_seconds=settings.qemu_timeout_seconds,
            timeout_seconds=float(settings.qemu_timeout_seconds),
        ),
        gc_grace_hours=settings.gc_grace_hours,
        shutdown_seconds=float(settings.host_shutdown_seconds),
    )
