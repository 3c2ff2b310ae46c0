"""VMware VMDK images.

Only the single-file ``monolithicSparse`` and ``streamOptimized`` variants are
accepted. Every other variant is driven by a text descriptor whose extent lines
name files that qemu would open on the host, so they are refused outright.
"""

from __future__ import annotations

import re
import struct

from .errors import ErrorCode, UnsafeImageError
from .info import ImageInfo
from .source import HEAD_WINDOW, Source

MAGIC = b"KDMV"
VMDK3_MAGIC = b"COWD"
ALLOWED_CREATE_TYPES = frozenset({"monolithicSparse", "streamOptimized"})

SECTOR = 512
# magic, version, flags, capacity, granularity, desc_offset, desc_size,
# num_gtes_per_gt, rgd_offset, gd_offset, grain_offset
_HEADER = struct.Struct("<4sIIQQQQIQQQ")
_COMPRESS_AT = 77
_U16 = struct.Struct("<H")
_GD_AT_END = 0xFFFFFFFFFFFFFFFF
_MARKER = struct.Struct("<QII")
_MARKER_EOS, _MARKER_FOOTER = 0, 3
_COMPRESSION_DEFLATE = 1

# The embedded descriptor must start right after the header: qemu reads parent
# and CID information from that fixed place whatever the header says.
_DESCRIPTOR_SECTOR = 1
_MAX_DESCRIPTOR_SECTORS = HEAD_WINDOW // SECTOR - _DESCRIPTOR_SECTOR
# qemu scans this many bytes after the header for parentFileNameHint.
_QEMU_DESC_SCAN = 20 * SECTOR

# Only horizontal whitespace inside a line: patterns that may span lines can
# backtrack quadratically over a hostile megabyte of blank lines.
_CREATE_TYPE = re.compile(rb'createType[ \t]*=[ \t]*"([^"\r\n]{0,128})"')
_EXTENT = re.compile(
    rb'^[ \t]*(RW|RDONLY|NOACCESS)[ \t]+(\d+)[ \t]+(\S+)[ \t]+"([^"\r\n]*)"', re.MULTILINE
)
_VERSION_LINE = re.compile(rb"version=[123]\r?\n")
_TEXT_PROBE_BYTES = 4096


def matches(head: bytes) -> bool:
    """Return True when ``head`` starts with a binary VMDK (version 3 or 4) magic."""
    return head[:4] in (MAGIC, VMDK3_MAGIC)


def is_text_descriptor(head: bytes) -> bool:
    """Return True when ``head`` looks like a plain-text VMDK descriptor file.

    Mirrors qemu's probe (comment and blank lines, then ``version=N``) over a wider
    window, so anything qemu could open as a descriptor is caught.
    """
    text = head[:_TEXT_PROBE_BYTES]
    if text.startswith(b"# Disk DescriptorFile"):
        return True
    pos = 0
    while pos < len(text):
        line_end = text.find(b"\n", pos)
        line = text[pos:] if line_end < 0 else text[pos : line_end + 1]
        if line.startswith(b"#"):
            pass
        elif line.startswith(b" "):
            if line.strip(b" \r\n") or not line.endswith(b"\n"):
                return False
        else:
            return _VERSION_LINE.match(line) is not None
        if line_end < 0:
            return False
        pos = line_end + 1
    return False


def reject_text_descriptor(head: bytes) -> None:
    """Always raise: a descriptor file points at extent files elsewhere on the host."""
    found = _CREATE_TYPE.search(head[:_TEXT_PROBE_BYTES])
    kind = f'createType "{_text(found.group(1))}"' if found else "no createType"
    raise UnsafeImageError(
        ErrorCode.VMDK_CREATE_TYPE,
        f"The file is a plain-text VMDK descriptor ({kind}) whose extents name other "
        "files on the host; only single-file monolithicSparse and streamOptimized VMDK "
        "images are accepted.",
    )


def parse(src: Source) -> ImageInfo:
    """Validate a single-file sparse VMDK and return its info; raises UnsafeImageError."""
    header = src.read_exact(0, SECTOR, "VMDK header")
    if header[:4] == VMDK3_MAGIC:
        raise UnsafeImageError(
            ErrorCode.VMDK_CREATE_TYPE,
            "The image is a VMDK version 3 (COWD, vmfsSparse) file; only "
            "monolithicSparse and streamOptimized VMDK images are accepted.",
        )
    (_, version, _, capacity, granularity, desc_sector, desc_sectors, gtes, _, gd_offset, _) = (
        _HEADER.unpack_from(header)
    )
    _check_version(version)
    if capacity == 0:
        # qemu treats a zero-capacity sparse header as a pointer to a descriptor
        # file, which then opens whatever extents that descriptor lists.
        raise UnsafeImageError(
            ErrorCode.VMDK_CREATE_TYPE,
            "The VMDK header declares zero capacity, which makes qemu treat its "
            "descriptor as a separate descriptor file with external extents.",
        )
    if desc_sector != _DESCRIPTOR_SECTOR or desc_sectors == 0:
        raise UnsafeImageError(
            ErrorCode.VMDK_DESCRIPTOR,
            f"The VMDK embedded descriptor is at sector {desc_sector} with "
            f"{desc_sectors} sectors; it must directly follow the header.",
        )
    if desc_sectors > _MAX_DESCRIPTOR_SECTORS:
        raise UnsafeImageError(
            ErrorCode.OVERSIZED_HEADER,
            f"The VMDK descriptor claims {desc_sectors} sectors; at most "
            f"{_MAX_DESCRIPTOR_SECTORS} are accepted.",
        )
    _check_geometry(gtes, granularity)
    descriptor = src.read_exact(SECTOR, desc_sectors * SECTOR, "VMDK descriptor")
    scan = descriptor if len(descriptor) >= _QEMU_DESC_SCAN else src.read(SECTOR, _QEMU_DESC_SCAN)
    if b"parentFileNameHint" in scan:
        raise UnsafeImageError(
            ErrorCode.BACKING_FILE,
            "The VMDK descriptor names a parent image (parentFileNameHint); images "
            "with backing files are not accepted.",
        )
    create_type = _check_descriptor(descriptor.split(b"\0", 1)[0])
    (compression,) = _U16.unpack_from(header, _COMPRESS_AT)

    if gd_offset == _GD_AT_END:
        capacity = _footer_capacity(src)

    return ImageInfo(
        format="vmdk",
        virtual_size=capacity * SECTOR,
        details={
            "create_type": create_type,
            "version": version,
            "compressed": compression == _COMPRESSION_DEFLATE,
            "grain_size": granularity * SECTOR,
            "descriptor_size": desc_sectors * SECTOR,
            "footer": gd_offset == _GD_AT_END,
        },
    )


def _check_version(version: int) -> None:
    if not 1 <= version <= 3:
        raise UnsafeImageError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"The VMDK header has version {version}; only versions 1 to 3 are accepted.",
        )


def _check_geometry(gtes: int, granularity: int) -> None:
    if not 0 < gtes <= 512 or not 0 < granularity <= 0x200000:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            f"The VMDK header has an invalid grain layout ({gtes} entries per grain "
            f"table, grain size {granularity} sectors).",
        )


def _check_descriptor(text: bytes) -> str:
    """Return the create type after checking the descriptor's type and extents."""
    types = [_text(m.group(1)) for m in _CREATE_TYPE.finditer(text)]
    if not types:
        raise UnsafeImageError(
            ErrorCode.VMDK_CREATE_TYPE,
            "The VMDK descriptor does not state a createType.",
        )
    for create_type in types:
        if create_type not in ALLOWED_CREATE_TYPES:
            raise UnsafeImageError(
                ErrorCode.VMDK_CREATE_TYPE,
                f'The VMDK create type "{create_type}" is not accepted; only '
                "monolithicSparse and streamOptimized images are.",
            )
    extents = _EXTENT.findall(text)
    if len(extents) > 1:
        raise UnsafeImageError(
            ErrorCode.VMDK_EXTENT,
            f"The VMDK descriptor lists {len(extents)} extents; a single-file image has one.",
        )
    for _, _, kind, name in extents:
        if kind != b"SPARSE" or b"/" in name or b"\\" in name:
            raise UnsafeImageError(
                ErrorCode.VMDK_EXTENT,
                f'The VMDK extent line ({_text(kind)} "{_text(name)}") does not describe '
                "the image file itself.",
            )
    return types[0]


def _footer_capacity(src: Source) -> int:
    """Read the footer a streamOptimized image keeps at its end; qemu prefers it."""
    start = (src.size // SECTOR) * SECTOR - 3 * SECTOR
    if start < SECTOR:
        raise UnsafeImageError(
            ErrorCode.TRUNCATED_HEADER,
            "The VMDK header says the real header is in a footer, but the file is too "
            "short to hold one.",
        )
    footer = src.read_exact(start, 3 * SECTOR, "VMDK footer")
    _, marker_size, marker_type = _MARKER.unpack_from(footer, 0)
    eos_value, eos_size, eos_type = _MARKER.unpack_from(footer, 2 * SECTOR)
    inner = _HEADER.unpack_from(footer, SECTOR)
    if (
        marker_size != 0
        or marker_type != _MARKER_FOOTER
        or inner[0] != MAGIC
        or (eos_value, eos_size, eos_type) != (0, 0, _MARKER_EOS)
        or inner[9] == _GD_AT_END
    ):
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            "The VMDK footer at the end of the file is missing or malformed.",
        )
    _check_version(inner[1])
    _check_geometry(inner[7], inner[4])
    capacity: int = inner[3]
    if capacity == 0:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            "The VMDK footer declares zero capacity.",
        )
    return capacity


def _text(raw: bytes) -> str:
    """Decode descriptor bytes for a message, bounded so hostile input stays short."""
    text = raw[:64].decode("ascii", "replace")
    return "".join(ch if ch.isprintable() else "?" for ch in text)
