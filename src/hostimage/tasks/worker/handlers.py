"""Task kind → handler, and what each kind does when it is retried or given up.

Handlers are idempotent: a retried task finishes what an earlier run left. Each gets the
run (:class:`TaskRun`): its claim fences every write, its scratch directory is its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from hostimage.compute.model import VolumeRef
from hostimage.services import gc_task
from hostimage.services.conversions import fail_convert, run_convert
from hostimage.services.host_images import lifecycle
from hostimage.services.host_sync import run_sync
from hostimage.services.hosts import SYNC_TASK
from hostimage.services.images import UPLOAD_TASK, give_up_upload, purge_image
from hostimage.services.images import note_retry as note_image_retry
from hostimage.services.provisioning import (
    delete_disk_files,
    domain_uuid,
    fail_create,
    remove_libvirt_vm,
    run_create_server,
    run_power,
    volume_name,
)
from hostimage.services.runtime import TaskRun
from hostimage.services.saving import fail_save, run_save
from hostimage.services.servers import POWER_TASK

Handler = Callable[[TaskRun], None]
# What to do when a task is failed for good (or, for retries, about to wait): the run still
# holds the claim, so these are fenced writes too.
Hook = Callable[[TaskRun, str], None]


@dataclass(frozen=True)
class Kind:
    """How the worker runs one kind of task."""

    run: Handler | None
    # Given up for good: bring the target to a terminal state that can be acted on.
    give_up: Hook | None = None
    # About to be retried: show why on the target.
    on_retry: Hook | None = None
    # Deletions never give up: they retry until storage answers.
    retry_forever: bool = False
    # Work held by a request (an upload) cannot be rerun by a worker.
    rerunnable: bool = True
    max_delay: timedelta = timedelta(minutes=10)


def _delete_host_image(run: TaskRun) -> None:
    lifecycle.purge_host_image(run, run.claim.target_id)


def _delete_image(run: TaskRun) -> None:
    purge_image(run, run.claim.target_id)


def _save(run: TaskRun) -> None:
    payload = run.claim.payload
    run_save(run, run.claim.target_id, payload["server_id"], bool(payload.get("auto_start")))


def _give_up_save(run: TaskRun, reason: str) -> None:
    fail_save(run, run.claim.target_id, run.claim.payload.get("server_id"), reason)


def _convert(run: TaskRun) -> None:
    run_convert(run, run.claim.target_id, run.claim.payload["format"])


def _give_up_convert(run: TaskRun, reason: str) -> None:
    fail_convert(run, run.claim.target_id, run.claim.payload["format"], reason)


def _create_server(run: TaskRun) -> None:
    run_create_server(run, run.claim.target_id, run.claim.payload)


def _give_up_create(run: TaskRun, reason: str) -> None:
    fail_create(run, run.claim.target_id, reason)


def _delete_server_disks(run: TaskRun) -> None:
    payload = run.claim.payload
    if "uri" not in payload:
        delete_disk_files(run.rt, list(payload.get("paths", [])))
        return
    refs = [VolumeRef(v["pool"], v["name"], v["path"]) for v in payload["volumes"] if v["name"]]
    # Also the volumes an unfinished build may have left under the server's names.
    sid, pool = payload["server_id"], payload["pool"]
    refs += [VolumeRef(pool, volume_name(sid, i), "") for i in range(payload["disks"])]
    remove_libvirt_vm(run.rt, payload["uri"], payload.get("domain") or domain_uuid(sid), refs)


def _sync(run: TaskRun) -> None:
    run_sync(run, run.claim.target_id)


def _power(run: TaskRun) -> None:
    run_power(run, run.claim.target_id, bool(run.claim.payload.get("start")))


def _give_up_upload(run: TaskRun, reason: str) -> None:
    with run.write() as session:
        give_up_upload(session, run.rt.storage, run.claim, f"The upload was interrupted: {reason}")


def _note_host_image(run: TaskRun, reason: str) -> None:
    lifecycle.note_retry(run, run.claim.target_id, reason)


def _note_image(run: TaskRun, reason: str) -> None:
    note_image_retry(run, run.claim.target_id, reason)


def _gc(run: TaskRun) -> None:
    gc_task.run_gc(run)


KINDS: dict[str, Kind] = {
    "save_host_image": Kind(_save, give_up=_give_up_save),
    "convert": Kind(_convert, give_up=_give_up_convert),
    "create_server": Kind(_create_server, give_up=_give_up_create),
    "delete_host_image": Kind(
        _delete_host_image,
        on_retry=_note_host_image,
        retry_forever=True,
        max_delay=timedelta(minutes=5),
    ),
    "delete_image": Kind(
        _delete_image, on_retry=_note_image, retry_forever=True, max_delay=timedelta(minutes=5)
    ),
    "delete_server_disks": Kind(
        _delete_server_disks, retry_forever=True, max_delay=timedelta(minutes=5)
    ),
    UPLOAD_TASK: Kind(None, give_up=_give_up_upload, rerunnable=False),
    "gc": Kind(_gc),
    SYNC_TASK: Kind(_sync),
    POWER_TASK: Kind(_power),
}
