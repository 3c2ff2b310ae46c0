"""Microsoft VHD images (qemu's ``vpc``), fixed and dynamic.

Differencing disks are refused because they reference a parent image. Fixed
disks carry their only footer at the very end of the file, which is why the
streaming inspector keeps a rolling tail.
"""

from __future__ import annotations

import struct

from .errors import ErrorCode, UnsafeImageError
from .info import ImageInfo
from .source import HEAD_WINDOW, Source

COOKIE = b"conectix"
FOOTER_SIZE = 512
_DYNAMIC_COOKIE = b"cxsparse"
_DYNAMIC_HEADER_SIZE = 1024

# cookie, features, format_version, data_offset, timestamp, creator_app,
# creator_version, creator_os, original_size, current_size, cylinders, heads,
# sectors_per_track, disk_type, checksum
_FOOTER = struct.Struct(">8sIIQI4sIIQQHBBII")
_CHECKSUM_AT = 64
# cookie, data_offset, table_offset, header_version, max_table_entries, block_size
_DYNAMIC = struct.Struct(">8sQQIII")

_FIXED, _DYNAMIC_DISK, _DIFFERENCING = 2, 3, 4
_DISK_TYPES = {_FIXED: "fixed", _DYNAMIC_DISK: "dynamic"}

# Creator applications whose images qemu sizes by the footer's current_size
# rather than by the CHS geometry (see qemu block/vpc.c).
_SIZE_BY_CURRENT_SIZE = frozenset({b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0"})
_MAX_CHS_SECTORS = 65535 * 16 * 255


def matches(head: bytes) -> bool:
    """Return True when ``head`` starts with a VHD footer copy (dynamic disks)."""
    return head[:8] == COOKIE


def has_trailing_footer(src: Source) -> bool:
    """Return True when the last 512 bytes of the image start with the VHD cookie.

    Needs the total size, so while streaming it waits for the end of the upload.
    """
    size = src.size
    if size < FOOTER_SIZE:
        return False
    return src.read(size - FOOTER_SIZE, len(COOKIE)) == COOKIE


def parse(src: Source, footer_offset: int) -> ImageInfo:
    """Validate the VHD whose footer is at ``footer_offset`` and return its info."""
    footer = src.read_exact(footer_offset, FOOTER_SIZE, "VHD footer")
    fields = _FOOTER.unpack_from(footer)
    data_offset, creator_app, current_size = fields[3], fields[5], fields[9]
    cylinders, heads, sectors, disk_type, checksum = fields[10:15]

    if disk_type == _DIFFERENCING:
        raise UnsafeImageError(
            ErrorCode.BACKING_FILE,
            "The VHD is a differencing disk that refers to a parent image; images with "
            "backing files are not accepted.",
        )
    if disk_type not in _DISK_TYPES:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            f"The VHD footer declares unknown disk type {disk_type}.",
        )
    zeroed = footer[:_CHECKSUM_AT] + b"\0\0\0\0" + footer[_CHECKSUM_AT + 4 :]
    if (~sum(zeroed)) & 0xFFFFFFFF != checksum:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            "The VHD footer checksum does not match its contents.",
        )
    at_end = footer_offset != 0
    if at_end and disk_type != _FIXED:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            "The VHD footer at the end of the file describes a dynamic disk, but the "
            "copy that must start the file is missing.",
        )

    chs_sectors = cylinders * heads * sectors
    if creator_app in _SIZE_BY_CURRENT_SIZE or chs_sectors == _MAX_CHS_SECTORS:
        virtual_size = current_size // 512 * 512
        size_source = "current_size"
    else:
        virtual_size = chs_sectors * 512
        size_source = "geometry"

    details: dict[str, object] = {
        "disk_type": _DISK_TYPES[disk_type],
        "creator_app": creator_app.decode("latin-1"),
        "size_source": size_source,
    }
    if disk_type == _DYNAMIC_DISK:
        details["block_size"] = _check_dynamic(src, data_offset, virtual_size)
    elif at_end and virtual_size > src.size - FOOTER_SIZE:
        raise UnsafeImageError(
            ErrorCode.TRUNCATED_HEADER,
            f"The fixed VHD declares {virtual_size} bytes of data but the file holds "
            f"only {src.size - FOOTER_SIZE}.",
        )
    return ImageInfo(format="vhd", virtual_size=virtual_size, details=details)


def _check_dynamic(src: Source, offset: int, virtual_size: int) -> int:
    """Validate the dynamic disk header at ``offset``; return the block size."""
    if not FOOTER_SIZE <= offset <= HEAD_WINDOW - _DYNAMIC_HEADER_SIZE:
        raise UnsafeImageError(
            ErrorCode.OVERSIZED_HEADER,
            f"The VHD dynamic disk header is at offset {offset}; it must lie within "
            f"the first {HEAD_WINDOW} bytes.",
        )
    raw = src.read_exact(offset, _DYNAMIC_HEADER_SIZE, "VHD dynamic disk header")
    cookie, _, table_offset, _, max_entries, block_size = _DYNAMIC.unpack_from(raw)
    block_size = int(block_size)
    if cookie != _DYNAMIC_COOKIE:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            "The VHD dynamic disk header does not start with its 'cxsparse' cookie.",
        )
    if block_size < 512 or block_size & (block_size - 1):
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            f"The VHD block size {block_size} is not a power of two of at least 512.",
        )
    if max_entries * block_size < virtual_size:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            "The VHD block allocation table is too small for the declared disk size.",
        )
    if table_offset + max_entries * 4 > src.size:
        raise UnsafeImageError(
            ErrorCode.TRUNCATED_HEADER,
            "The VHD block allocation table extends past the end of the file.",
        )
    return block_size
