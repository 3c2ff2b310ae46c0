"""Image and host-image statuses: the transition table and the derived host-image status."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from hostimage.errors import Conflict


class ImageStatus(StrEnum):
    QUEUED = "queued"
    SAVING = "saving"
    ACTIVE = "active"
    KILLED = "killed"
    DELETING = "deleting"


TRANSITIONS: dict[ImageStatus, frozenset[ImageStatus]] = {
    ImageStatus.QUEUED: frozenset({ImageStatus.SAVING, ImageStatus.KILLED, ImageStatus.DELETING}),
    ImageStatus.SAVING: frozenset({ImageStatus.ACTIVE, ImageStatus.KILLED, ImageStatus.DELETING}),
    ImageStatus.ACTIVE: frozenset({ImageStatus.DELETING}),
    ImageStatus.KILLED: frozenset({ImageStatus.DELETING}),
    ImageStatus.DELETING: frozenset(),
}

# Highest first: one deleting part makes the whole deleting, one killed part kills it, …
PRECEDENCE: tuple[ImageStatus, ...] = (
    ImageStatus.DELETING,
    ImageStatus.KILLED,
    ImageStatus.SAVING,
    ImageStatus.QUEUED,
    ImageStatus.ACTIVE,
)


def can_transition(old: ImageStatus, new: ImageStatus) -> bool:
    """True when ``old → new`` is in the transition table (staying put is allowed)."""
    return old == new or new in TRANSITIONS[old]


def check_transition(old: ImageStatus, new: ImageStatus) -> None:
    """Raise Conflict (409) when ``old → new`` is not allowed."""
    if not can_transition(old, new):
        raise Conflict(
            f"An image cannot go from '{old.value}' to '{new.value}'.", code="bad_status"
        )


def derive_host_status(sub_statuses: Iterable[ImageStatus]) -> ImageStatus:
    """A host image's status from its sub-images: the highest in ``PRECEDENCE`` wins.

    A host image without sub-images is ``queued`` (nothing saved yet).
    """
    present = set(sub_statuses)
    for status in PRECEDENCE:
        if status in present:
            return status
    return ImageStatus.QUEUED


def delete_refusal(protected: bool, status: ImageStatus) -> tuple[str, str] | None:
    """Why a host image cannot be deleted now, as ``(code, reason)``, or None if it can."""
    if protected:
        return ("protected", "Deletion protection is enabled; disable it before deleting.")
    if status is ImageStatus.DELETING:
        return ("deleting", "The image is already being deleted.")
    if status in (ImageStatus.SAVING, ImageStatus.QUEUED):
        return ("saving", "The image is being saved; wait until it is active or killed.")
    return None
