"""Batch operations (F12): the single use case per item, each in its own transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from hostimage.errors import HostImageError, ValidationFailed
from hostimage.services.context import RequestContext
from hostimage.services.host_images.edit import change_project, set_protection, update_host_image
from hostimage.services.host_images.lifecycle import delete_host_image
from hostimage.services.host_images.share import share_host_image

MAX_BATCH = 1000

Runner = Callable[[Session, RequestContext, str], object]


def _runner(action: str, params: dict[str, Any]) -> tuple[Runner, int]:
    if action == "share":
        return (
            lambda s, c, i: share_host_image(
                s,
                c,
                i,
                str(params.get("scope", "")),
                params.get("project_ids"),
                params.get("domain_ids"),
            ),
            200,
        )
    if action == "change_project":
        if not params.get("project_id"):
            raise ValidationFailed("change_project needs params.project_id.")
        return (lambda s, c, i: change_project(s, c, i, str(params["project_id"])), 200)
    if action == "set_protection":
        if not isinstance(params.get("protected"), bool):
            raise ValidationFailed("set_protection needs params.protected true or false.")
        return (lambda s, c, i: set_protection(s, c, i, bool(params["protected"])), 200)
    if action == "update":
        return (lambda s, c, i: update_host_image(s, c, i, dict(params)), 200)
    if action == "delete":
        return (delete_host_image, 202)
    raise ValidationFailed(
        "action must be one of share, change_project, set_protection, update, delete."
    )


def run_batch(
    session: Session, ctx: RequestContext, action: str, ids: list[str], params: dict[str, Any]
) -> dict[str, Any]:
    """Run ``action`` on every id; one failing item never rolls back the others."""
    if not ids:
        raise ValidationFailed("ids must name at least one host image.")
    if len(ids) > MAX_BATCH:
        raise ValidationFailed(f"A batch takes at most {MAX_BATCH} ids.")
    run, ok_status = _runner(action, params)
    results: list[dict[str, Any]] = []
    for item_id in dict.fromkeys(ids):
        try:
            out = run(session, ctx, item_id)
        except HostImageError as exc:
            session.rollback()
            results.append(
                {
                    "id": item_id,
                    "ok": False,
                    "status": exc.status,
                    "error": {"code": exc.code, "detail": exc.detail},
                }
            )
            continue
        result: dict[str, Any] = {"id": item_id, "ok": True, "status": ok_status, "error": None}
        if isinstance(out, dict) and "task_id" in out:
            result["task_id"] = out["task_id"]
        results.append(result)
    return {"results": results}
