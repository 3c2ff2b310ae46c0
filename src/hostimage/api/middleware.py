"""The request's boundary: its id, and the last word on errors nothing else handled.

Plain ASGI (not ``BaseHTTPMiddleware``), so streaming bodies pass through untouched.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hostimage.api.errors import problem, problem_for_exception

log = logging.getLogger("hostimage.api")

HEADER = b"x-request-id"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")
STATE_KEY = "request_id"


def accepted_request_id(given: str | None) -> str:
    """The client's request id when it is 1-64 characters of ``[A-Za-z0-9._-]``, else a
    new one: ids go into logs and a 64-character column, so nothing else is taken."""
    if given is not None and _VALID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def _given(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == HEADER:
            try:
                return bytes(value).decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


class RequestBoundary:
    """Gives every HTTP request an id (``scope["state"]["request_id"]``, read as
    ``request.state.request_id``), echoes it in the ``X-Request-ID`` header of every
    answer, and turns an exception that escaped every handler into a problem answer
    (``500 internal``, or the mapped status of a known fault) while the answer has not
    started. The traceback goes to the server log only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = accepted_request_id(_given(scope))
        scope.setdefault("state", {})[STATE_KEY] = rid
        header = (HEADER, rid.encode("ascii"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        if _has_nul(scope):
            refusal = problem(
                422,
                "validation_error",
                "Validation error",
                "The path and query cannot contain NUL characters.",
                request_id=rid,
            )
            await refusal(scope, receive, send_with_id)
            return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                raise  # the status line is out: the server can only cut the connection
            response = problem_for_exception(exc, rid)
            if response.status_code >= 500:
                _log(scope, rid, exc, response.status_code)
            await response(scope, receive, send_with_id)


def _has_nul(scope: Scope) -> bool:
    # No database stores NUL in text (PostgreSQL refuses it): refused here once for every
    # path and query parameter.
    query = bytes(scope.get("query_string", b"")).lower()
    return "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query


def _log(scope: Scope, rid: str, exc: Exception, status: int) -> None:
    where: Any = f"{scope.get('method')} {scope.get('path')}"
    if status == 500:
        log.error("request %s (%s) failed", rid, where, exc_info=exc)
    else:
        log.warning("request %s (%s) answered %s: %s", rid, where, status, exc)
