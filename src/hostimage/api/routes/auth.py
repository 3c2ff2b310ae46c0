"""``/auth``: login, switch project, whoami, logout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from hostimage.api.deps import CtxDep, SessionDep, SettingsDep
from hostimage.api.schemas.identity import LoginBody, SwitchBody, TokenOut, WhoAmI
from hostimage.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=TokenOut)
def login(body: LoginBody, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    return auth.login(
        session,
        body.username,
        body.password,
        body.domain,
        body.project_id,
        settings.token_ttl_seconds,
    )


@router.post("/switch", response_model=TokenOut)
def switch(
    body: SwitchBody, session: SessionDep, ctx: CtxDep, settings: SettingsDep
) -> dict[str, Any]:
    return auth.switch_project(session, ctx, body.project_id, settings.token_ttl_seconds)


@router.get("/whoami", response_model=WhoAmI)
def whoami(ctx: CtxDep) -> dict[str, Any]:
    return auth.whoami(ctx)


@router.post("/logout", status_code=204)
def logout(session: SessionDep, ctx: CtxDep) -> Response:
    auth.logout(session, ctx)
    return Response(status_code=204)
