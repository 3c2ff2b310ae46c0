"""Which failures of background work are worth retrying, and how they read to users.

A *transient* failure (storage or database unreachable, a run deferred behind other work) is
retried by the worker with backoff; anything else — a refused image, a tool that failed on
the data, no room left — ends the task at once: retrying would fail the same way.
"""

from __future__ import annotations

import errno

from sqlalchemy.exc import DBAPIError, OperationalError

from hostimage.compute.model import ComputeError, HostUnreachable
from hostimage.errors import (
    Busy,
    HostFailed,
    HostImageError,
    HostUnavailable,
    InsufficientStorage,
    StorageUnavailable,
)
from hostimage.storage import StorageError


class Deferred(Exception):
    """The work cannot be done yet (e.g. a purge waits for a server being built from the
    image); the task is retried later."""


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same work later may succeed."""
    if isinstance(
        exc, Deferred | StorageError | Busy | OperationalError | TimeoutError | HostUnreachable
    ):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    if isinstance(exc, OSError):
        return exc.errno != errno.ENOSPC
    return False


def as_service_error(exc: BaseException) -> BaseException:
    """``exc`` in the service's own words where it has some: a full disk becomes
    :class:`InsufficientStorage`, a storage failure :class:`StorageUnavailable` (503)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return InsufficientStorage(f"No space left: {exc}")
    if isinstance(exc, StorageError):
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return InsufficientStorage(f"No space left in the image storage: {cause}")
        return StorageUnavailable(f"The image storage failed: {exc}")
    if isinstance(exc, HostUnreachable):
        return HostUnavailable(str(exc))
    if isinstance(exc, ComputeError):
        return HostFailed(str(exc))
    return exc


def describe(exc: BaseException) -> str:
    """One line for ``status_reason`` and task errors."""
    exc = as_service_error(exc)
    if isinstance(exc, HostImageError):
        return f"{exc.code}: {exc.detail}"
    if isinstance(exc, OSError) and exc.strerror:
        # Without the file name: the reason reaches tenants, the server's paths must not.
        return f"{type(exc).__name__}: {exc.strerror}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
