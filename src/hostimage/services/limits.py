"""The size limits every image meets (SPEC §9.1) and the room work needs before it starts."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from hostimage.errors import InsufficientStorage, TooLarge
from hostimage.services.settings import get_settings

GiB = 1024**3
# Left free on a work file system whatever a task needs: the rest of the host lives there too.
RESERVE_BYTES = 256 * 1024 * 1024


class VirtualSizeTooLarge(TooLarge):
    """An image whose disk is larger than ``max_virtual_size_gb`` (its bytes may be few)."""

    status = 422


@dataclass(frozen=True)
class ImageLimits:
    max_virtual_size: int
    max_upload_size: int

    def check_virtual_size(self, virtual_size: int, what: str = "The image") -> None:
        """Raise :class:`VirtualSizeTooLarge` for a disk over ``max_virtual_size_gb``."""
        if virtual_size > self.max_virtual_size:
            raise VirtualSizeTooLarge(
                f"{what} has a virtual size of {virtual_size} bytes, over the limit of "
                f"{_gib(self.max_virtual_size)} (setting max_virtual_size_gb).",
                virtual_size=virtual_size,
                limit=self.max_virtual_size,
            )

    def check_upload_size(self, size: int) -> None:
        """Raise :class:`TooLarge` (413) for an upload over ``max_upload_size_gb``."""
        if size > self.max_upload_size:
            raise TooLarge(
                f"The upload exceeds the limit of {_gib(self.max_upload_size)} "
                "(setting max_upload_size_gb).",
                limit=self.max_upload_size,
            )


def _gib(size: int) -> str:
    return f"{size / GiB:.6g} GiB ({size} bytes)"


def image_limits(session: Session) -> ImageLimits:
    """The limits as the settings say now."""
    s = get_settings(session)
    return ImageLimits(
        max_virtual_size=int(float(s["max_virtual_size_gb"]) * GiB),
        max_upload_size=int(float(s["max_upload_size_gb"]) * GiB),
    )


def ensure_room(path: Path, needed: int, what: str) -> None:
    """Raise :class:`InsufficientStorage` unless the file system holding ``path`` has room for
    ``needed`` more bytes (and the reserve) — checked before work starts, so it fails with a
    clear reason instead of filling the disk."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free - RESERVE_BYTES < needed:
        raise InsufficientStorage(
            f"{what} needs {needed} bytes of scratch space; {max(0, free - RESERVE_BYTES)} "
            "are free.",
            needed=needed,
            free=free,
        )
