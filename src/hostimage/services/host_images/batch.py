"""Batch operations (F12): one action on up to 1,000 host images, with a result per item.

The batch is one write transaction: every visible row is locked by one statement per 500
ids (in id order), each item is checked and applied by the same code as the single-item use
case, and everything is written by one commit. An item that is refused or invalid writes
nothing but its failed log entry (refusals are checked before any write), so it never
rolls back the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from hostimage.db.models import HostImage
from hostimage.errors import HostImageError, NotFound, ValidationFailed
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import Lookups, lock_many
from hostimage.services.host_images.edit import (
    apply_change_project,
    apply_protection,
    apply_update,
)
from hostimage.services.host_images.lifecycle import apply_delete
from hostimage.services.host_images.share import apply_share

MAX_BATCH = 1000

# Applies the action to one locked row; returns a task id when the action starts one.
Apply = Callable[[Session, RequestContext, HostImage, Lookups], str | None]


def _none(_: object) -> None:
    return None


def _action(action: str, params: dict[str, Any]) -> tuple[Apply, int]:
    if action == "share":
        scope = str(params.get("scope", ""))
        projects, domains = params.get("project_ids"), params.get("domain_ids")
        return (
            lambda s, c, hi, lk: _none(apply_share(s, c, hi, scope, projects, domains, lk)),
            200,
        )
    if action == "change_project":
        if not params.get("project_id"):
            raise ValidationFailed("change_project needs params.project_id.")
        target = str(params["project_id"])
        return (lambda s, c, hi, lk: _none(apply_change_project(s, c, hi, target, lk)), 200)
    if action == "set_protection":
        if not isinstance(params.get("protected"), bool):
            raise ValidationFailed("set_protection needs params.protected true or false.")
        protected = bool(params["protected"])
        return (lambda s, c, hi, lk: _none(apply_protection(s, c, hi, protected, lk)), 200)
    if action == "update":
        changes = dict(params)
        return (lambda s, c, hi, lk: _none(apply_update(s, c, hi, changes, lk)), 200)
    if action == "delete":
        return (apply_delete, 202)
    raise ValidationFailed(
        "action must be one of share, change_project, set_protection, update, delete."
    )


def _failure(item_id: str, exc: HostImageError) -> dict[str, Any]:
    return {
        "id": item_id,
        "ok": False,
        "status": exc.status,
        "error": {"code": exc.code, "detail": exc.detail},
    }


def run_batch(
    session: Session, ctx: RequestContext, action: str, ids: list[str], params: dict[str, Any]
) -> dict[str, Any]:
    """Run ``action`` on every id (repeats once); one failing item never undoes the others.

    Results come in the order the ids were given: ``ok``, the HTTP status the single-item
    request would have answered, the error, and for deletes the purge task's id.
    """
    if not ids:
        raise ValidationFailed("ids must name at least one host image.")
    if len(ids) > MAX_BATCH:
        raise ValidationFailed(f"A batch takes at most {MAX_BATCH} ids.")
    apply, ok_status = _action(action, params)
    unique = list(dict.fromkeys(ids))
    lookups = Lookups(session, batched=True)
    locked = lock_many(session, ctx, unique, lookups)
    results: list[dict[str, Any]] = []
    try:
        for item_id in unique:
            hi = locked.get(item_id)
            if hi is None:
                results.append(_failure(item_id, NotFound(f"Host image {item_id} not found.")))
                continue
            try:
                task_id = apply(session, ctx, hi, lookups)
            except HostImageError as exc:
                results.append(_failure(item_id, exc))
                continue
            result: dict[str, Any] = {"id": item_id, "ok": True, "status": ok_status, "error": None}
            if task_id is not None:
                result["task_id"] = task_id
            results.append(result)
        lookups.write_gathered()
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return {"results": results}
