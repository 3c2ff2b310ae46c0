"""Task kind → handler. Handlers are idempotent: a retried task finishes what was left."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from hostimage.db.models import Task
from hostimage.services.host_images.lifecycle import purge_host_image
from hostimage.services.images import purge_image
from hostimage.storage import Storage

Handler = Callable[[Session, Storage, Task], None]


def _delete_host_image(session: Session, storage: Storage, task: Task) -> None:
    purge_host_image(session, storage, task.target_id)


def _delete_image(session: Session, storage: Storage, task: Task) -> None:
    purge_image(session, storage, task.target_id)


HANDLERS: dict[str, Handler] = {
    "delete_host_image": _delete_host_image,
    "delete_image": _delete_image,
}
