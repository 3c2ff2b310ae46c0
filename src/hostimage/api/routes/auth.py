"""``/auth``: login, switch project, whoami, logout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from hostimage.api.deps import AnonymousRun, Run, SettingsDep
from hostimage.api.passwords import password_pool
from hostimage.api.schemas.common import Problem
from hostimage.api.schemas.identity import LoginBody, SwitchBody, TokenOut, WhoAmI
from hostimage.errors import Busy
from hostimage.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=TokenOut,
    responses={
        429: {"model": Problem, "description": "Too many failed logins (Retry-After)"},
        503: {"model": Problem, "description": "Too many logins being checked (Retry-After)"},
    },
)
async def login(
    body: LoginBody, request: Request, run: AnonymousRun, settings: SettingsDep
) -> dict[str, Any]:
    """A token for the user. A throttled user or address is refused (429) before the
    password is looked at; the password is verified on the password pool."""
    pool = password_pool(request)
    if not pool.has_room():
        raise pool.refuse()
    check = await run.anonymous(auth.start_login, body.username, body.domain, run.client_ip)
    try:
        verified = await pool.run(auth.check_password, check, body.password)
    except Busy:
        await run.anonymous(auth.abandon_login, check)
        raise
    return await run.anonymous(
        auth.finish_login, check, verified, body.project_id, settings.token_ttl_seconds
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
