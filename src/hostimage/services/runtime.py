"""What worker-side use cases need besides a session: sessions of their own, storage, dirs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Task
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

    def disk_path(self, relative: str) -> Path:
        """The absolute path of a server disk; relative paths never leave ``disks_dir``."""
        path = (self.disks_dir / relative).resolve()
        if self.disks_dir.resolve() not in path.parents:
            raise ValueError(f"Disk path escapes the disk directory: {relative!r}")
        return path


def report_progress(factory: sessionmaker[Session], task_id: str, percent: float) -> None:
    """Record a task's progress (0–100) in its own short transaction, never backwards."""
    pct = max(0, min(100, int(percent)))
    with factory() as session:
        begin_write(session)
        session.execute(
            update(Task)
            .where(Task.id == task_id, Task.progress < pct)
            .values(progress=pct, heartbeat_at=utcnow())
        )
        session.commit()


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
    )
