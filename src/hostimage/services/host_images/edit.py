"""Editing host images: attributes (F3), deletion protection (F6), change project (F5)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hostimage.db.base import utcnow
from hostimage.db.models import HostImage, Project
from hostimage.domain.permissions import Action, authorize, authorize_change_project
from hostimage.domain.sharing import Owner
from hostimage.errors import Conflict, Invalid
from hostimage.services import oplog
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import (
    Lookups,
    committed,
    lock_visible,
    owner_of,
    rename_subs,
    unique_name,
)
from hostimage.services.host_images.read import detail

EDITABLE = (
    "name",
    "description",
    "os_type",
    "os_distribution",
    "os_version",
    "os_arch",
    "os_language",
    "disk_driver",
    "net_driver",
    "min_ram_mb",
    "hypervisor",
    "boot_mode",
    "protected",
)


def _check_mutable(status: str) -> None:
    if status == "deleting":
        raise Conflict("The host image is being deleted.", code="deleting")


def update_host_image(
    session: Session, ctx: RequestContext, host_image_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Edit attributes (F3). Renaming renames the sub-images ``<name>-root``/``-data-<n>``;
    one ``update`` entry carries the field diff, none when nothing changed; a taken name → 409."""
    lk = Lookups(session)
    hi = lock_visible(session, ctx, host_image_id, lk, new_name=changes.get("name"))
    with committed(session):
        apply_update(session, ctx, hi, changes, lk)
        answer = detail(session, ctx, hi, lk)
    return answer


def apply_update(
    session: Session, ctx: RequestContext, hi: HostImage, changes: dict[str, Any], lk: Lookups
) -> bool:
    """:func:`update_host_image` on a locked row, without committing; True when it changed."""
    with oplog.refusals_recorded(session, ctx, oplog.of_host_image(hi), "update", lk.names):
        authorize(ctx.principal, Action.UPDATE, owner_of(hi))
        _check_mutable(hi.status)
        diff = {
            k: [getattr(hi, k), v]
            for k, v in changes.items()
            if k in EDITABLE and getattr(hi, k) != v
        }
        if "name" in diff and lk.name_taken(hi, changes["name"]):
            raise Conflict(f"A host image named {changes['name']!r} exists.", code="name_taken")
    if not diff:
        return False
    lk.change(hi, {**{key: new for key, (_, new) in diff.items()}, "updated_at": utcnow()})
    notes: dict[str, Any] = {"changes": diff}
    if "name" in diff:
        notes["renamed_sub_images"] = rename_subs(session, hi, lk)
    oplog.record(session, ctx, oplog.of_host_image(hi), "update", notes=notes, names=lk.names)
    return True


def set_protection(
    session: Session, ctx: RequestContext, host_image_id: str, protected: bool
) -> dict[str, Any]:
    """Enable or disable deletion protection (F6); logged when it changes."""
    lk = Lookups(session)
    hi = lock_visible(session, ctx, host_image_id, lk)
    with committed(session):
        apply_protection(session, ctx, hi, protected, lk)
        answer = detail(session, ctx, hi, lk)
    return answer


def apply_protection(
    session: Session, ctx: RequestContext, hi: HostImage, protected: bool, lk: Lookups
) -> bool:
    """:func:`set_protection` on a locked row, without committing; True when it changed."""
    with oplog.refusals_recorded(session, ctx, oplog.of_host_image(hi), "set_protection", lk.names):
        authorize(ctx.principal, Action.SET_PROTECTION, owner_of(hi))
        _check_mutable(hi.status)
    if hi.protected == protected:
        return False
    old, hi.protected, hi.updated_at = hi.protected, protected, utcnow()
    oplog.record(
        session,
        ctx,
        oplog.of_host_image(hi),
        "set_protection",
        notes={"changes": {"protected": [old, protected]}},
        names=lk.names,
    )
    return True


def change_project(
    session: Session, ctx: RequestContext, host_image_id: str, project_id: str
) -> dict[str, Any]:
    """Move a host image, its sub-images and their data to another project (F5).

    Sysadmin anywhere; domain admin within its domain; refused (409) while shared. The name
    is made unique in the target namespace.
    """
    lk = Lookups(session)
    hi = lock_visible(session, ctx, host_image_id, lk)
    with committed(session):
        apply_change_project(session, ctx, hi, project_id, lk)
        answer = detail(session, ctx, hi)
    return answer


def apply_change_project(
    session: Session, ctx: RequestContext, hi: HostImage, project_id: str, lk: Lookups
) -> bool:
    """:func:`change_project` on a locked row, without committing; True when it moved."""
    target = session.get(Project, project_id)
    with oplog.refusals_recorded(session, ctx, oplog.of_host_image(hi), "change_project", lk.names):
        if target is None:
            authorize(ctx.principal, Action.CHANGE_PROJECT, owner_of(hi))
            raise Invalid(f"Unknown project {project_id}.", code="unknown_project")
        authorize_change_project(
            ctx.principal, owner_of(hi), Owner(domain_id=target.domain_id, project_id=target.id)
        )
        _check_mutable(hi.status)
        if hi.share_scope != "none":
            raise Conflict(
                "Only unshared images can change project; set sharing to 不共享 first.",
                code="shared",
            )
        if hi.status == "saving":
            raise Conflict("The host image is being saved.", code="saving")
    if target.id == hi.project_id:
        return False
    old = {"project_id": hi.project_id, "domain_id": hi.domain_id, "name": hi.name}
    if target.domain_id != hi.domain_id and lk.three_level():
        # Names are unique per domain only with three-level on; elsewhere they stay unique.
        hi.name = unique_name(session, hi.name, target.domain_id, True, hi.id)
    renamed = hi.name != old["name"]
    hi.project_id, hi.domain_id, hi.updated_at = target.id, target.domain_id, utcnow()
    lk.touch_subs(hi.id, project_id=target.id, domain_id=target.domain_id)
    if renamed:
        rename_subs(session, hi)
    oplog.record(
        session,
        ctx,
        oplog.of_host_image(hi),
        "change_project",
        notes={
            "old": old,
            "new": {"project_id": target.id, "domain_id": target.domain_id, "name": hi.name},
        },
        names=lk.names,
    )
    return True
