"""The retry policy: which failures are retried, how often, and how long to wait."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hostimage.services.faults import is_transient
from hostimage.tasks.worker.handlers import Kind


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base``, then twice as long after each further failure, up to
    the kind's ``max_delay``; at most ``max_attempts`` runs unless the kind retries forever."""

    max_attempts: int = 5
    base: timedelta = timedelta(seconds=5)

    def delay(self, kind: Kind, attempt: int) -> timedelta:
        """How long to wait after the ``attempt``-th run failed."""
        factor = 1 << min(max(attempt - 1, 0), 30)
        return min(self.base * factor, kind.max_delay)

    def retries(self, kind: Kind, attempt: int, exc: BaseException | None) -> bool:
        """Whether a run that ended with ``exc`` (None: its worker stopped) is tried again."""
        if not kind.rerunnable:
            return False
        if exc is not None and not is_transient(exc):
            return False
        return kind.retry_forever or attempt < self.max_attempts
