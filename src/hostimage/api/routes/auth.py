"""``/auth``: login, switch project, whoami, logout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from hostimage.api.deps import AnonymousRun, Run, SettingsDep
from hostimage.api.schemas.identity import LoginBody, SwitchBody, TokenOut, WhoAmI
from hostimage.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=TokenOut)
async def login(body: LoginBody, run: AnonymousRun, settings: SettingsDep) -> dict[str, Any]:
    return await run.anonymous(
        auth.login,
        body.username,
        body.password,
        body.domain,
        body.project_id,
        settings.token_ttl_seconds,
    )


@router.post("/switch", response_model=TokenOut)
async def switch(body: SwitchBody, run: Run, settings: SettingsDep) -> dict[str, Any]:
    return await run(auth.switch_project, body.project_id, settings.token_ttl_seconds)


@router.get("/whoami", response_model=WhoAmI)
async def whoami(run: Run) -> dict[str, Any]:
    return await run(lambda _session, ctx: auth.whoami(ctx))


@router.post("/logout", status_code=204)
async def logout(run: Run) -> Response:
    await run(auth.logout)
    return Response(status_code=204)
