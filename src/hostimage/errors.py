"""The one exception tree. The API maps it to problem+json in exactly one place."""

from __future__ import annotations

from typing import Any


class HostImageError(Exception):
    """Base of every error the service raises on purpose."""

    status = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.extra = extra
        # Set when a failed operation-log entry for this refusal was added to the session:
        # the use case then commits that entry instead of rolling back.
        self.logged = False


class NotAuthenticated(HostImageError):
    status = 401
    code = "not_authenticated"
    title = "Not authenticated"


class NotFound(HostImageError):
    status = 404
    code = "not_found"
    title = "Not found"


class Forbidden(HostImageError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Conflict(HostImageError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Invalid(HostImageError):
    """A semantic refusal that is neither permission nor state (400)."""

    status = 400
    code = "invalid"
    title = "Bad request"


class ValidationFailed(HostImageError):
    status = 422
    code = "validation_error"
    title = "Validation error"


class UnsafeImage(HostImageError):
    status = 400
    code = "unsafe_image"
    title = "Unsafe image"


class PayloadTooLarge(HostImageError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class RangeNotSatisfiable(HostImageError):
    status = 416
    code = "range_not_satisfiable"
    title = "Range not satisfiable"


class TooLarge(HostImageError):
    """An image over ``max_upload_size_gb`` or ``max_virtual_size_gb`` (SPEC §9.1)."""

    status = 413
    code = "too_large"
    title = "Image too large"


class TooManyAttempts(HostImageError):
    """Login throttling: too many failed attempts for a user or a client address."""

    status = 429
    code = "too_many_attempts"
    title = "Too many attempts"


class Busy(HostImageError):
    """The database (or another shared resource) is busy; the client should retry."""

    status = 503
    code = "busy"
    title = "Service busy"


class InsufficientStorage(HostImageError):
    """Not enough free space to store or convert the data (no partial result is kept)."""

    status = 507
    code = "insufficient_storage"
    title = "Insufficient storage"


class StorageUnavailable(HostImageError):
    """The object storage did not answer (or failed); nothing was kept, retry later."""

    status = 503
    code = "storage_unavailable"
    title = "Storage unavailable"


class HostUnavailable(HostImageError):
    """A compute host did not answer (or refused); nothing was changed, retry later."""

    status = 503
    code = "host_unreachable"
    title = "Host unreachable"


class HostFailed(HostImageError):
    """A compute host answered with an error (a pool or network it lacks, a refused volume);
    what it said is in the detail."""

    status = 502
    code = "host_error"
    title = "Host error"
