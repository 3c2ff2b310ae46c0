"""Request-scoped dependencies: the database session, storage, the caller's context."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from hostimage.services.auth import authenticate
from hostimage.services.context import RequestContext
from hostimage.settings import Settings
from hostimage.storage import Storage


def get_session(request: Request) -> Iterator[Session]:
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or uuid.uuid4().hex


def get_ctx(request: Request, session: Annotated[Session, Depends(get_session)]) -> RequestContext:
    # The read transaction goes on into the use case: a writing use case starts its own
    # (``begin_write``), a reading one saves a COMMIT and a BEGIN round trip.
    principal = authenticate(session, bearer(request))
    return RequestContext(
        principal=principal,
        request_id=request_id(request),
        client_ip=request.client.host if request.client else None,
    )


SessionDep = Annotated[Session, Depends(get_session)]
CtxDep = Annotated[RequestContext, Depends(get_ctx)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
