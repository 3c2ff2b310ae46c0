"""ISO 9660 optical disc images, which qemu reads as raw bytes."""

from __future__ import annotations

import struct

from .info import ImageInfo
from .source import Source

SIGNATURE = b"CD001"
SIGNATURE_OFFSET = 0x8001
_DESCRIPTOR_OFFSET = 0x8000
_PRIMARY = 1
_VOLUME_ID = slice(_DESCRIPTOR_OFFSET + 40, _DESCRIPTOR_OFFSET + 72)
_BLOCKS_AT = _DESCRIPTOR_OFFSET + 80
_BLOCK_SIZE_AT = _DESCRIPTOR_OFFSET + 128


def matches(head: bytes) -> bool:
    """Return True when ``head`` carries the ISO 9660 signature at offset 0x8001."""
    return head[SIGNATURE_OFFSET : SIGNATURE_OFFSET + len(SIGNATURE)] == SIGNATURE


def parse(src: Source, head: bytes) -> ImageInfo:
    """Describe an ISO image; its virtual size is the file length.

    ISO images have no structures qemu follows, so there is nothing to refuse here.
    """
    details: dict[str, object] = {}
    if len(head) >= _BLOCK_SIZE_AT + 2 and head[_DESCRIPTOR_OFFSET] == _PRIMARY:
        volume_id = head[_VOLUME_ID].decode("ascii", "replace").strip()
        (blocks,) = struct.unpack_from("<I", head, _BLOCKS_AT)
        (block_size,) = struct.unpack_from("<H", head, _BLOCK_SIZE_AT)
        details = {"volume_id": volume_id, "filesystem_size": blocks * block_size}
    return ImageInfo(format="iso", virtual_size=src.size, details=details)
