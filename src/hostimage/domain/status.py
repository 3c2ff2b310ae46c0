"""Statuses: one enum and one transition table per kind of object (SPEC §9.1).

Every status write goes through a :class:`Machine`: the database layer checks each change
against its table and makes it a compare-and-set, so two writers racing can never both win
and an illegal change is a bug that raises (:class:`IllegalTransition`), never a silent
overwrite. The host image's status is also derived from its sub-images
(:func:`derive_host_status`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

S = TypeVar("S", bound=StrEnum)


class IllegalTransition(RuntimeError):
    """A status change that its kind's table does not allow: a bug in the caller."""


@dataclass(frozen=True)
class Machine(Generic[S]):
    """The statuses of one kind of object and the changes allowed between them."""

    kind: str
    enum: type[S]
    transitions: Mapping[S, frozenset[S]]

    def __post_init__(self) -> None:
        missing = set(self.enum) - set(self.transitions)
        if missing:
            raise ValueError(f"{self.kind}: no transitions listed for {sorted(missing)}")

    def parse(self, value: str) -> S:
        """The member named ``value``; raises :class:`IllegalTransition` for an unknown one."""
        try:
            return self.enum(value)
        except ValueError as exc:
            raise IllegalTransition(f"{self.kind}: unknown status {value!r}") from exc

    def can(self, old: str, new: str) -> bool:
        """True when ``old → new`` is allowed (staying put always is)."""
        o, n = self.parse(old), self.parse(new)
        return o == n or n in self.transitions[o]

    def check(self, old: str, new: str) -> None:
        """Raise :class:`IllegalTransition` unless ``old → new`` is allowed."""
        if not self.can(old, new):
            raise IllegalTransition(f"A {self.kind} cannot go from '{old}' to '{new}'.")

    def sources(self, new: str) -> frozenset[S]:
        """Every status from which ``new`` may be reached (``new`` itself included)."""
        n = self.parse(new)
        return frozenset(o for o, targets in self.transitions.items() if n in targets) | {n}

    def terminal(self) -> frozenset[S]:
        """The statuses nothing leaves."""
        return frozenset(s for s, targets in self.transitions.items() if not targets)


class ImageStatus(StrEnum):
    """A sub-image's or standalone image's status (the host image's too: see HOST_IMAGE)."""

    QUEUED = "queued"
    SAVING = "saving"
    ACTIVE = "active"
    KILLED = "killed"
    DELETING = "deleting"


HostImageStatus = ImageStatus


class ServerStatus(StrEnum):
    CREATING = "creating"
    READY = "ready"
    RUNNING = "running"
    SAVING = "saving"
    FAILED = "failed"
    # Its domain is no longer defined on its host (found by a sync).
    MISSING = "missing"


class HostStatus(StrEnum):
    UNKNOWN = "unknown"  # not yet reached
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CopyStatus(StrEnum):
    """A format copy's (多云镜像) status."""

    QUEUED = "queued"
    CONVERTING = "converting"
    ACTIVE = "active"
    FAILED = "failed"


_I = ImageStatus
IMAGE: Machine[ImageStatus] = Machine(
    "image",
    ImageStatus,
    {
        _I.QUEUED: frozenset({_I.SAVING, _I.KILLED, _I.DELETING}),
        _I.SAVING: frozenset({_I.ACTIVE, _I.KILLED, _I.DELETING}),
        # Killed: a sub-image saved before its host image's save failed for good.
        _I.ACTIVE: frozenset({_I.DELETING, _I.KILLED}),
        # A standalone image whose upload failed takes a new upload; a sub-image never
        # leaves killed but to be deleted (the services check which one it is).
        _I.KILLED: frozenset({_I.SAVING, _I.DELETING}),
        _I.DELETING: frozenset(),
    },
)

# Derived from the sub-images; a killed host image is never resurrected.
HOST_IMAGE: Machine[ImageStatus] = Machine(
    "host image",
    ImageStatus,
    {
        _I.QUEUED: frozenset({_I.SAVING, _I.ACTIVE, _I.KILLED, _I.DELETING}),
        _I.SAVING: frozenset({_I.ACTIVE, _I.KILLED, _I.DELETING}),
        _I.ACTIVE: frozenset({_I.DELETING}),
        _I.KILLED: frozenset({_I.DELETING}),
        _I.DELETING: frozenset(),
    },
)

_S = ServerStatus
SERVER: Machine[ServerStatus] = Machine(
    "server",
    ServerStatus,
    {
        # A VM on a libvirt host may be started right after it is built.
        _S.CREATING: frozenset({_S.READY, _S.RUNNING, _S.FAILED}),
        _S.READY: frozenset({_S.RUNNING, _S.SAVING, _S.MISSING}),
        _S.RUNNING: frozenset({_S.READY, _S.MISSING}),
        _S.SAVING: frozenset({_S.READY, _S.RUNNING}),
        # A domain defined again under the same UUID comes back.
        _S.MISSING: frozenset({_S.READY, _S.RUNNING}),
        # A failed server can only be deleted (its row goes).
        _S.FAILED: frozenset(),
    },
)

_T = TaskStatus
TASK: Machine[TaskStatus] = Machine(
    "task",
    TaskStatus,
    {
        # A queued task whose target is gone, or that waits forever, may be failed unrun.
        _T.QUEUED: frozenset({_T.RUNNING, _T.FAILED}),
        # Back to queued: retried after a transient error, or its worker stopped beating.
        _T.RUNNING: frozenset({_T.SUCCEEDED, _T.FAILED, _T.QUEUED}),
        _T.SUCCEEDED: frozenset(),
        _T.FAILED: frozenset(),
    },
)

_C = CopyStatus
FORMAT_COPY: Machine[CopyStatus] = Machine(
    "format copy",
    CopyStatus,
    {
        _C.QUEUED: frozenset({_C.CONVERTING, _C.FAILED}),
        # Back to queued when the conversion task is retried.
        _C.CONVERTING: frozenset({_C.ACTIVE, _C.FAILED, _C.QUEUED}),
        _C.ACTIVE: frozenset(),
        # Asked for again.
        _C.FAILED: frozenset({_C.QUEUED}),
    },
)

# Highest first: one deleting part makes the whole deleting, one killed part kills it, …
PRECEDENCE: tuple[ImageStatus, ...] = (
    ImageStatus.DELETING,
    ImageStatus.KILLED,
    ImageStatus.SAVING,
    ImageStatus.QUEUED,
    ImageStatus.ACTIVE,
)


def derive_host_status(sub_statuses: Iterable[ImageStatus | str]) -> ImageStatus:
    """A host image's status from its sub-images: the highest in ``PRECEDENCE`` wins.

    A host image without sub-images is ``queued`` (nothing saved yet).
    """
    present = {ImageStatus(s) for s in sub_statuses}
    for status in PRECEDENCE:
        if status in present:
            return status
    return ImageStatus.QUEUED


def delete_refusal(protected: bool, status: ImageStatus | str) -> tuple[str, str] | None:
    """Why a host image cannot be deleted now, as ``(code, reason)``, or None if it can."""
    if protected:
        return ("protected", "Deletion protection is enabled; disable it before deleting.")
    status = ImageStatus(status)
    if status is ImageStatus.DELETING:
        return ("deleting", "The image is already being deleted.")
    if status in (ImageStatus.SAVING, ImageStatus.QUEUED):
        return ("saving", "The image is being saved; wait until it is active or killed.")
    return None
