"""What a purge must wait for: servers being built from the images it would remove."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostimage.db.models import Server, ServerDisk
from hostimage.domain.status import ServerStatus
from hostimage.services.faults import Deferred


def wait_for_builds(session: Session, image_ids: list[str]) -> None:
    """Raise :class:`Deferred` while a server is being built from any of the images: their
    data must stay until the build has copied it."""
    if not image_ids:
        return
    building = session.scalar(
        select(Server.name)
        .join(ServerDisk, ServerDisk.server_id == Server.id)
        .where(
            ServerDisk.source_image_id.in_(image_ids),
            Server.status == ServerStatus.CREATING.value,
        )
        .limit(1)
    )
    if building is not None:
        raise Deferred(f"Waiting for server {building!r}, which is being built from this image.")
