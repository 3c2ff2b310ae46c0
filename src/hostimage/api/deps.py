"""Request-scoped dependencies: the use-case runner, and for streaming routes the session,
storage and caller's context."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from hostimage.api.middleware import STATE_KEY, accepted_request_id
from hostimage.db.engine import begin_read
from hostimage.errors import NotAuthenticated
from hostimage.services.auth import authenticate
from hostimage.services.context import RequestContext
from hostimage.settings import Settings
from hostimage.storage import Storage

P = ParamSpec("P")
T = TypeVar("T")


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def request_id(request: Request) -> str:
    """The id :class:`~hostimage.api.middleware.RequestBoundary` gave the request."""
    rid = getattr(request.state, STATE_KEY, None)
    return rid if isinstance(rid, str) else accepted_request_id(None)


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _context(
    session: Session, token: str | None, req_id: str, client_ip: str | None
) -> RequestContext:
    """The caller behind ``token`` (401 otherwise) and the request it made."""
    return RequestContext(
        principal=authenticate(session, token), request_id=req_id, client_ip=client_ip
    )


class Runner:
    """Runs a request's use case in one worker-thread hop: open a session, authenticate the
    bearer token, call the use case, close the session (rolling back what it did not commit).
    The session reads without a transaction until the use case calls ``begin_write``.

    One hop instead of one per dependency: each hop is a thread hand-off and a wake-up of
    the event loop, which cost more CPU than a short use case itself.
    """

    def __init__(self, request: Request, limiter: anyio.CapacityLimiter) -> None:
        self.limiter = limiter
        self.factory: sessionmaker[Session] = request.app.state.session_factory
        self.token = bearer(request)
        self.request_id = request_id(request)
        self.client_ip = _client_ip(request)

    async def __call__(
        self,
        use_case: Callable[Concatenate[Session, RequestContext, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``use_case(session, ctx, *args, **kwargs)`` for the authenticated caller."""
        return await anyio.to_thread.run_sync(
            self._authenticated, use_case, args, kwargs, limiter=self.limiter
        )

    async def anonymous(
        self, use_case: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``use_case(session, *args, **kwargs)`` without a caller (login)."""
        return await anyio.to_thread.run_sync(
            self._anonymous, use_case, args, kwargs, limiter=self.limiter
        )

    def _authenticated(self, use_case: Callable[..., T], args: Any, kwargs: Any) -> T:
        with self.factory() as session:
            begin_read(session)
            ctx = _context(session, self.token, self.request_id, self.client_ip)
            return use_case(session, ctx, *args, **kwargs)

    def _anonymous(self, use_case: Callable[..., T], args: Any, kwargs: Any) -> T:
        with self.factory() as session:
            begin_read(session)
            return use_case(session, *args, **kwargs)


def _limiter(request: Request) -> anyio.CapacityLimiter:
    state = request.app.state
    # Made here, inside the event loop it belongs to.
    if getattr(state, "use_case_limiter", None) is None:
        state.use_case_limiter = anyio.CapacityLimiter(state.settings.api_threads)
    limiter: anyio.CapacityLimiter = state.use_case_limiter
    return limiter


async def get_runner(request: Request) -> Runner:
    # A missing token is refused before the request's parameters are checked (401 before
    # 422), as the token itself is checked with the use case, in its thread.
    if bearer(request) is None:
        raise NotAuthenticated("Missing bearer token.")
    return Runner(request, _limiter(request))


async def get_anonymous_runner(request: Request) -> Runner:
    return Runner(request, _limiter(request))


# Streaming routes (upload, download, export) hold a session for the life of the stream.


def get_session(request: Request) -> Iterator[Session]:
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def get_ctx(request: Request, session: Annotated[Session, Depends(get_session)]) -> RequestContext:
    return _context(session, bearer(request), request_id(request), _client_ip(request))


Run = Annotated[Runner, Depends(get_runner)]
AnonymousRun = Annotated[Runner, Depends(get_anonymous_runner)]
SessionDep = Annotated[Session, Depends(get_session)]
CtxDep = Annotated[RequestContext, Depends(get_ctx)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
