"""``/settings``: three-level permissions and target formats."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hostimage.api.deps import CtxDep, SessionDep
from hostimage.api.schemas.identity import SettingsOut, SettingsPatch
from hostimage.services import settings

router = APIRouter(prefix="/settings", tags=["settings"])


@router.get("", response_model=SettingsOut)
def get_settings(session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return settings.get_settings(session)


@router.patch("", response_model=SettingsOut)
def patch_settings(body: SettingsPatch, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return settings.update_settings(session, ctx, body.model_dump(exclude_unset=True))
