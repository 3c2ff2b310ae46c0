"""Setting the share scope of a host image and its sub-images, atomically (F4)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hostimage.db.base import utcnow
from hostimage.db.models import Domain, HostImage, Image, Project, Share
from hostimage.domain.sharing import (
    ShareScope,
    ShareState,
    authorize_share,
    normalize_request,
    share_action,
    validate_share,
)
from hostimage.errors import Conflict, Invalid
from hostimage.services import oplog
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import Lookups, committed, lock_visible, owner_of
from hostimage.services.host_images.read import detail


def current_share(session: Session, hi: HostImage) -> ShareState:
    """The host image's share state as stored."""
    rows = session.execute(
        select(Share.target_kind, Share.target_id).where(Share.resource_id == hi.id)
    ).all()
    return ShareState(
        ShareScope(hi.share_scope),
        project_ids=frozenset(t for k, t in rows if k == "project"),
        domain_ids=frozenset(t for k, t in rows if k == "domain"),
    )


def _check_targets(session: Session, hi: HostImage, wanted: ShareState) -> None:
    if wanted.project_ids:
        found = {
            pid: did
            for pid, did in session.execute(
                select(Project.id, Project.domain_id).where(Project.id.in_(wanted.project_ids))
            )
        }
        unknown = sorted(wanted.project_ids - set(found))
        if unknown:
            raise Invalid(f"Unknown projects: {', '.join(unknown)}.", code="unknown_project")
        foreign = sorted(pid for pid, did in found.items() if did != hi.domain_id)
        if foreign:
            raise Invalid(
                "Projects can be shared to only within the image's own domain: "
                + ", ".join(foreign),
                code="project_in_other_domain",
            )
    if wanted.domain_ids:
        n = session.scalar(
            select(func.count()).select_from(Domain).where(Domain.id.in_(wanted.domain_ids))
        )
        if n != len(wanted.domain_ids):
            raise Invalid("Some target domains do not exist.", code="unknown_domain")


def share_host_image(
    session: Session,
    ctx: RequestContext,
    host_image_id: str,
    scope: str,
    project_ids: list[str] | None = None,
    domain_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Set the share scope (five console choices); the sub-images follow in the same
    transaction. The caller must reach both the new scope and the current one."""
    lk = Lookups(session)
    hi = lock_visible(session, ctx, host_image_id, lk)
    with committed(session):
        apply_share(session, ctx, hi, scope, project_ids, domain_ids, lk)
        answer = detail(session, ctx, hi)
    return answer


def apply_share(
    session: Session,
    ctx: RequestContext,
    hi: HostImage,
    scope: str,
    project_ids: list[str] | None,
    domain_ids: list[str] | None,
    lk: Lookups,
) -> bool:
    """:func:`share_host_image` on a locked row, without committing; True when it changed."""
    owner = owner_of(hi)
    try:
        scope_enum = ShareScope(scope)
    except ValueError as exc:
        raise Invalid(f"Unknown share scope {scope!r}.", code="bad_share") from exc
    wanted = normalize_request(owner, scope_enum, project_ids, domain_ids)
    current = current_share(session, hi)
    action = share_action(wanted)
    with oplog.refusals_recorded(session, ctx, oplog.of_host_image(hi), action, lk.names):
        authorize_share(ctx.principal, owner, current, wanted)
        if hi.status == "deleting":
            raise Conflict("The host image is being deleted.", code="deleting")
    validate_share(wanted, lk.three_level())
    _check_targets(session, hi, wanted)
    if wanted == current:
        return False
    _apply(session, hi, wanted)
    oplog.record(
        session,
        ctx,
        oplog.of_host_image(hi),
        action,
        notes={
            "old": _state_notes(current),
            "new": _state_notes(wanted),
        },
        names=lk.names,
    )
    return True


def _apply(session: Session, hi: HostImage, state: ShareState) -> None:
    sub_ids = list(session.scalars(select(Image.id).where(Image.host_image_id == hi.id)))
    resource_ids = [hi.id, *sub_ids]
    session.execute(delete(Share).where(Share.resource_id.in_(resource_ids)))
    targets = [("project", t) for t in sorted(state.project_ids)] + [
        ("domain", t) for t in sorted(state.domain_ids)
    ]
    session.add_all(
        Share(resource_id=rid, target_kind=kind, target_id=tid)
        for rid in resource_ids
        for kind, tid in targets
    )
    now = utcnow()
    hi.share_scope, hi.updated_at = state.scope.value, now
    for img in session.scalars(select(Image).where(Image.id.in_(sub_ids))):
        img.share_scope, img.updated_at = state.scope.value, now


def _state_notes(state: ShareState) -> dict[str, Any]:
    return {
        "scope": state.scope.value,
        "project_ids": sorted(state.project_ids),
        "domain_ids": sorted(state.domain_ids),
    }
