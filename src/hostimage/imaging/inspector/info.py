"""The result of a successful inspection."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Formats the inspector can accept, under the names used by the rest of the service.
ACCEPTED_FORMATS: tuple[str, ...] = ("raw", "iso", "qcow2", "vmdk", "vhd", "vhdx")


@dataclass(frozen=True)
class ImageInfo:
    """What the inspector learned about an image that passed every safety check.

    ``virtual_size`` is the guest-visible disk size in bytes, or ``None`` when the
    format does not record it. ``details`` holds format-specific facts such as the
    qcow2 version or the VMDK create type; its keys differ per format.
    """

    format: str
    virtual_size: int | None
    details: dict[str, object] = field(default_factory=dict)
