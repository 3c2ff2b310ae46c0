"""``/settings``: three-level permissions, target formats and image size limits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hostimage.api.deps import Run
from hostimage.api.schemas.identity import SettingsOut, SettingsPatch
from hostimage.services import settings

router = APIRouter(prefix="/settings", tags=["settings"])


@router.get("", response_model=SettingsOut)
async def get_settings(run: Run) -> dict[str, Any]:
    return await run(lambda session, _ctx: settings.get_settings(session))


@router.patch("", response_model=SettingsOut)
async def patch_settings(body: SettingsPatch, run: Run) -> dict[str, Any]:
    return await run(settings.update_settings, body.model_dump(exclude_unset=True))
