"""The one mapping of errors to ``application/problem+json``.

The exception tree maps by its own status and code. Faults of the infrastructure are
translated here once (:func:`translate`): a busy database → 503 ``busy``, a full disk →
507 ``insufficient_storage``, a unique-key race → 409 ``conflict``; anything else is a 500
``internal`` whose traceback goes to the server log only.
"""

from __future__ import annotations

import errno
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import exc as orm_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from hostimage.compute.model import ComputeError, HostUnreachable
from hostimage.errors import (
    Busy,
    Conflict,
    HostFailed,
    HostImageError,
    HostUnavailable,
    InsufficientStorage,
    StorageUnavailable,
)
from hostimage.storage import StorageError

PROBLEM = "application/problem+json"
RETRY_BUSY_SECONDS = 1

# PostgreSQL SQLSTATEs that mean "try again shortly": serialization failure, deadlock, lock
# not available (lock_timeout), statement timeout or cancel, too many connections.
_PG_BUSY = {"40001", "40P01", "55P03", "57014", "53300", "53400"}
_PG_DISK_FULL = "53100"
# SQLite primary result codes: BUSY, LOCKED, FULL.
_SQLITE_BUSY = {5, 6}
_SQLITE_FULL = 13
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"https://hostimage.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503 and "Retry-After" not in headers:
        headers["Retry-After"] = str(RETRY_BUSY_SECONDS)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _busy(what: str) -> Busy:
    return Busy(
        f"The {what} is busy; retry in a moment.",
        headers={"Retry-After": str(RETRY_BUSY_SECONDS)},
    )


def _no_space() -> InsufficientStorage:
    return InsufficientStorage("There is not enough free storage space for this request.")


def _database_fault(exc: sa_exc.DBAPIError) -> HostImageError | None:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    primary = sqlite_code & 0xFF if isinstance(sqlite_code, int) else None
    message = str(orig).lower()
    if isinstance(exc, sa_exc.IntegrityError):
        # Only races are conflicts; a NOT NULL or CHECK violation is a bug (500).
        if sqlstate == "23503" or "foreign key constraint" in message:
            return Conflict(
                "The request refers to an object that does not exist or was just removed.",
            )
        if sqlstate == "23505" or "unique constraint" in message:
            return Conflict(
                "An object with the same unique name or key was written at the same time; "
                "read it again or choose another name.",
            )
        return None
    if sqlstate in _PG_BUSY or primary in _SQLITE_BUSY:
        return _busy("database")
    if isinstance(exc, sa_exc.OperationalError) and (
        "database is locked" in message or "database is busy" in message
    ):
        return _busy("database")
    if sqlstate == _PG_DISK_FULL or primary == _SQLITE_FULL:
        return _no_space()
    return None


def translate(exc: BaseException) -> HostImageError | None:
    """The service error an infrastructure fault stands for, or ``None`` for a bug.

    Follows the chain of causes, so a storage error raised from a full disk still answers
    507."""
    if isinstance(exc, HostImageError):
        return exc
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError):
            found = _database_fault(current)
            if found is not None:
                return found
        elif isinstance(current, sa_exc.TimeoutError):  # the connection pool is exhausted
            return _busy("database")
        elif isinstance(current, orm_exc.StaleDataError):
            # A compare-and-set lost: another request changed the object's status first.
            return Conflict(
                "The object was changed by another request at the same time; read it again.",
            )
        elif isinstance(current, StorageError):
            return StorageUnavailable(f"The image storage failed: {current}")
        elif isinstance(current, HostUnreachable):
            return HostUnavailable(str(current))
        elif isinstance(current, ComputeError):
            return HostFailed(str(current))
        elif isinstance(current, OSError) and current.errno in _NO_SPACE:
            return _no_space()
        current = current.__cause__ or current.__context__
    return None


def error_response(exc: HostImageError, request_id: str | None) -> JSONResponse:
    extra = dict(exc.extra)
    if request_id is not None:
        extra.setdefault("request_id", request_id)
    return problem(exc.status, exc.code, exc.title, exc.detail, exc.headers, **extra)


def problem_for_exception(exc: Exception, request_id: str) -> JSONResponse:
    """The answer to an exception no handler took: its translation, else 500 ``internal``."""
    known = translate(exc)
    if known is not None:
        return error_response(known, request_id)
    return problem(
        500,
        "internal",
        "Internal server error",
        f"An unexpected error occurred. It was logged with request id {request_id}.",
        request_id=request_id,
    )


def _request_id(request: Request) -> str | None:
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else None


def install(app: FastAPI) -> None:
    @app.exception_handler(HostImageError)
    async def _service_error(request: Request, exc: HostImageError) -> JSONResponse:
        return error_response(exc, _request_id(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return problem(
            422,
            "validation_error",
            "Validation error",
            f"{where}: {first['msg']}" if where else str(first["msg"]),
            errors=errors,
            request_id=_request_id(request),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "not_authenticated"}
        return problem(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            str(exc.detail),
            dict(exc.headers or {}),
            request_id=_request_id(request),
        )
