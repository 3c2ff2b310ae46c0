"""Task kind → handler. Handlers are idempotent: a retried task finishes what was left."""

from __future__ import annotations

from collections.abc import Callable

from hostimage.db.models import Task
from hostimage.services.conversions import run_convert
from hostimage.services.host_images.lifecycle import purge_host_image
from hostimage.services.images import purge_image
from hostimage.services.provisioning import delete_disk_files, fail_create, run_create_server
from hostimage.services.runtime import Runtime
from hostimage.services.saving import fail_save, run_save

Handler = Callable[[Runtime, Task], None]


def _delete_host_image(rt: Runtime, task: Task) -> None:
    with rt.factory() as session:
        purge_host_image(session, rt.storage, task.target_id)


def _delete_image(rt: Runtime, task: Task) -> None:
    with rt.factory() as session:
        purge_image(session, rt.storage, task.target_id)


def _save(rt: Runtime, task: Task) -> None:
    run_save(
        rt, task.id, task.target_id, task.payload["server_id"], bool(task.payload.get("auto_start"))
    )


def _convert(rt: Runtime, task: Task) -> None:
    run_convert(rt, task.id, task.target_id, task.payload["format"])


def _create_server(rt: Runtime, task: Task) -> None:
    run_create_server(rt, task.id, task.target_id, dict(task.payload))


def _delete_server_disks(rt: Runtime, task: Task) -> None:
    delete_disk_files(rt, list(task.payload.get("paths", [])))


HANDLERS: dict[str, Handler] = {
    "delete_host_image": _delete_host_image,
    "delete_image": _delete_image,
    "save_host_image": _save,
    "convert": _convert,
    "create_server": _create_server,
    "delete_server_disks": _delete_server_disks,
}


def _give_up_save(rt: Runtime, task: Task) -> None:
    fail_save(
        rt,
        task.target_id,
        task.payload.get("server_id"),
        task.error or "The worker saving this image stopped.",
    )


def _give_up_create(rt: Runtime, task: Task) -> None:
    fail_create(rt, task.id, task.target_id, task.error or "The worker building it stopped.")


# What to clean up when a task is failed for good after its worker died.
GIVE_UP: dict[str, Handler] = {"save_host_image": _give_up_save, "create_server": _give_up_create}
