"""Raw disk images: anything that carries no recognised image header."""

from __future__ import annotations

from .info import ImageInfo
from .source import Source

_GPT_SIGNATURE = b"EFI PART"
# GPT headers sit in LBA 1, whose offset depends on the logical sector size.
_GPT_OFFSETS = (512, 4096)
_MBR_SIGNATURE_AT = 510
_MBR_SIGNATURE = b"\x55\xaa"


def partition_table(head: bytes) -> str | None:
    """Return "gpt", "mbr" or None depending on the partition table found in ``head``."""
    for offset in _GPT_OFFSETS:
        if head[offset : offset + len(_GPT_SIGNATURE)] == _GPT_SIGNATURE:
            return "gpt"
    if head[_MBR_SIGNATURE_AT : _MBR_SIGNATURE_AT + 2] == _MBR_SIGNATURE:
        return "mbr"
    return None


def parse(src: Source, head: bytes) -> ImageInfo:
    """Describe a raw image; its virtual size is the file length.

    Partitioned disks stay raw: a partition table is guest data, not an image format.
    """
    return ImageInfo(
        format="raw",
        virtual_size=src.size,
        details={"partition_table": partition_table(head)},
    )
