"""Helpers shared by host-image use cases: loading, locking, naming, refusal logging."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import HostImage, Image
from hostimage.db.scoping import visible
from hostimage.domain.formats import mib_ceil
from hostimage.domain.naming import suffixed
from hostimage.domain.sharing import Owner
from hostimage.domain.status import ImageStatus, derive_host_status
from hostimage.errors import NotFound
from hostimage.services.context import RequestContext


def owner_of(hi: HostImage | Image) -> Owner:
    return Owner(domain_id=hi.domain_id, project_id=hi.project_id)


def get_visible(session: Session, ctx: RequestContext, host_image_id: str) -> HostImage:
    """The host image if the caller can see it, else NotFound (never Forbidden)."""
    hi = session.scalar(
        select(HostImage).where(HostImage.id == host_image_id, visible(HostImage, ctx.principal))
    )
    if hi is None:
        raise NotFound(f"Host image {host_image_id} not found.")
    return hi


def lock_visible(session: Session, ctx: RequestContext, host_image_id: str) -> HostImage:
    """Begin a write transaction and lock the visible host image's row against racing writers."""
    begin_write(session)
    hi = session.scalar(
        select(HostImage)
        .where(HostImage.id == host_image_id, visible(HostImage, ctx.principal))
        .with_for_update()
    )
    if hi is None:
        raise NotFound(f"Host image {host_image_id} not found.")
    return hi


def sub_images(session: Session, host_image_id: str) -> list[Image]:
    return list(
        session.scalars(
            select(Image).where(Image.host_image_id == host_image_id).order_by(Image.idx)
        )
    )


def touch_subs(session: Session, host_image_id: str, **values: object) -> None:
    """Apply ``values`` to every sub-image of the host image in one statement."""
    session.execute(
        update(Image)
        .where(Image.host_image_id == host_image_id)
        .values(updated_at=utcnow(), **values)
    )


def name_taken(
    session: Session, name: str, domain_id: str, three_level: bool, exclude_id: str | None = None
) -> bool:
    """Names are unique per domain with three-level permissions on, else globally."""
    q = select(HostImage.id).where(HostImage.name == name)
    if three_level:
        q = q.where(HostImage.domain_id == domain_id)
    if exclude_id:
        q = q.where(HostImage.id != exclude_id)
    return session.scalar(q.limit(1)) is not None


def unique_name(
    session: Session, name: str, domain_id: str, three_level: bool, exclude_id: str | None = None
) -> str:
    """``name`` itself when free, else ``name`` with a random suffix that is free."""
    candidate = name
    while name_taken(session, candidate, domain_id, three_level, exclude_id):
        candidate = suffixed(name)
    return candidate


def refresh_derived(hi: HostImage, subs: list[Image]) -> None:
    """Recompute the fields a host image derives from its sub-images (status included).

    Called by every write that changes sub-images, never by a read.
    """
    ordered = sorted(subs, key=lambda s: s.idx or 0)
    system = ordered[0] if ordered else None
    hi.sub_image_count = len(ordered)
    hi.size = sum(s.size for s in ordered)
    hi.virtual_size = system.virtual_size if system else 0
    hi.disk_format = system.disk_format if system else None
    hi.min_disk_mb = mib_ceil(system.virtual_size) if system else None
    hi.status = derive_host_status(ImageStatus(s.status) for s in ordered).value
    killed = [s.status_reason for s in ordered if s.status == "killed" and s.status_reason]
    hi.status_reason = (
        killed[0] if killed else (hi.status_reason if hi.status == "killed" else None)
    )
