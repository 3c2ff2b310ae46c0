"""QEMU qcow2 images.

Refused: backing files, external data files (CVE-2024-32498), unknown incompatible
features, encryption, and headers that are truncated or too large to verify.
"""

from __future__ import annotations

import struct

from .errors import ErrorCode, UnsafeImageError
from .info import ImageInfo
from .source import HEAD_WINDOW, Source

MAGIC = b"QFI\xfb"

# magic, version, backing_file_offset, backing_file_size, cluster_bits, size,
# crypt_method, l1_size, l1_table_offset, refcount_table_offset,
# refcount_table_clusters, nb_snapshots, snapshots_offset
_HEADER_V2 = struct.Struct(">4sIQIIQIIQQIIQ")
# incompatible, compatible and autoclear features, refcount_order, header_length
_HEADER_V3 = struct.Struct(">QQQII")
_EXTENSION = struct.Struct(">II")

_V3_MIN_HEADER = _HEADER_V2.size + _HEADER_V3.size

_INCOMPAT_DIRTY = 1 << 0
_INCOMPAT_CORRUPT = 1 << 1
_INCOMPAT_DATA_FILE = 1 << 2
_INCOMPAT_COMPRESSION = 1 << 3
_INCOMPAT_EXTL2 = 1 << 4
_INCOMPAT_KNOWN = (
    _INCOMPAT_DIRTY
    | _INCOMPAT_CORRUPT
    | _INCOMPAT_DATA_FILE
    | _INCOMPAT_COMPRESSION
    | _INCOMPAT_EXTL2
)

_EXT_END = 0x00000000
_EXT_BACKING_FORMAT = 0xE2792ACA
_EXT_DATA_FILE = 0x44415441

_COMPRESSION_TYPES = {0: "zlib", 1: "zstd"}


def matches(head: bytes) -> bool:
    """Return True when ``head`` starts with the qcow magic (any qcow version)."""
    return head[:4] == MAGIC


def parse(src: Source) -> ImageInfo:
    """Validate a qcow2 image and return its info; raises UnsafeImageError if it is unsafe.

    Only the header and the header extensions of the first cluster are read.
    """
    fields = _HEADER_V2.unpack(src.read_exact(0, _HEADER_V2.size, "qcow2 header"))
    version, backing_offset, backing_size, cluster_bits, size, crypt_method = fields[1:7]
    nb_snapshots = fields[11]
    if version != 2 and version != 3:
        raise UnsafeImageError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"The image is qcow version {version}; only qcow2 versions 2 and 3 are accepted.",
        )
    if not 9 <= cluster_bits <= 21:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            f"The qcow2 header declares cluster_bits={cluster_bits}, outside the valid "
            "range 9 to 21.",
        )
    cluster_size = 1 << cluster_bits
    header_area = min(cluster_size, HEAD_WINDOW)

    incompatible = compatible = autoclear = 0
    refcount_order, header_length = 4, _HEADER_V2.size
    if version == 3:
        raw = src.read_exact(_HEADER_V2.size, _HEADER_V3.size, "qcow2 version 3 header")
        incompatible, compatible, autoclear, refcount_order, header_length = _HEADER_V3.unpack(raw)
        if header_length < _V3_MIN_HEADER:
            raise UnsafeImageError(
                ErrorCode.INVALID_HEADER,
                f"The qcow2 header length is {header_length} bytes, shorter than the "
                f"{_V3_MIN_HEADER} bytes version 3 requires.",
            )
        if header_length > header_area:
            raise UnsafeImageError(
                ErrorCode.OVERSIZED_HEADER,
                f"The qcow2 header claims to be {header_length} bytes long, more than the "
                f"{header_area} bytes it may occupy.",
            )

    if backing_offset or backing_size:
        name = _backing_name(src, backing_offset, backing_size)
        raise UnsafeImageError(
            ErrorCode.BACKING_FILE,
            f"The qcow2 image refers to a backing file{name}; images with backing files "
            "could read other files on the host and are not accepted.",
        )
    if incompatible & _INCOMPAT_DATA_FILE:
        raise UnsafeImageError(
            ErrorCode.DATA_FILE,
            "The qcow2 image stores its data in an external data file; such images could "
            "read other files on the host and are not accepted.",
        )
    unknown = incompatible & ~_INCOMPAT_KNOWN
    if unknown:
        raise UnsafeImageError(
            ErrorCode.UNKNOWN_INCOMPATIBLE_FEATURES,
            f"The qcow2 image sets incompatible feature bits {unknown:#x} that this "
            "service does not know, so it cannot be verified as safe.",
        )
    if crypt_method:
        raise UnsafeImageError(
            ErrorCode.UNSUPPORTED_FEATURE,
            "The qcow2 image is encrypted; encrypted images are not accepted.",
        )
    if refcount_order > 6:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            f"The qcow2 header declares refcount_order={refcount_order}; the maximum is 6.",
        )

    compression = _compression_type(src, header_length, incompatible)
    _check_extensions(src, header_length, header_area, cluster_size)

    return ImageInfo(
        format="qcow2",
        virtual_size=size,
        details={
            "version": version,
            "cluster_size": cluster_size,
            "header_length": header_length,
            "incompatible_features": incompatible,
            "compatible_features": compatible,
            "autoclear_features": autoclear,
            "dirty": bool(incompatible & _INCOMPAT_DIRTY),
            "corrupt": bool(incompatible & _INCOMPAT_CORRUPT),
            "extended_l2": bool(incompatible & _INCOMPAT_EXTL2),
            "compression_type": compression,
            "snapshots": nb_snapshots,
        },
    )


def _backing_name(src: Source, offset: int, length: int) -> str:
    """Return " ('name')" for the error message when the name is cheaply readable."""
    if offset == 0 or not 0 < length <= 1023 or offset + length > HEAD_WINDOW:
        return ""
    name = src.read(offset, length).decode("utf-8", "replace")
    if len(name) > 80:
        name = name[:77] + "..."
    return f" ({name!r})"


def _compression_type(src: Source, header_length: int, incompatible: int) -> str:
    if header_length <= _V3_MIN_HEADER:
        return "zlib"
    code = src.read_exact(_V3_MIN_HEADER, 1, "qcow2 header")[0]
    name = _COMPRESSION_TYPES.get(code)
    if name is None:
        raise UnsafeImageError(
            ErrorCode.UNSUPPORTED_FEATURE,
            f"The qcow2 image uses unknown compression type {code}.",
        )
    if code != 0 and not incompatible & _INCOMPAT_COMPRESSION:
        raise UnsafeImageError(
            ErrorCode.INVALID_HEADER,
            "The qcow2 image names a compression type without setting the matching "
            "incompatible feature bit.",
        )
    return name


def _check_extensions(src: Source, start: int, area_end: int, cluster_size: int) -> None:
    """Walk the header extensions, refusing data-file and backing-format entries."""
    area = src.read(start, area_end - start)
    file_ended = len(area) < area_end - start
    pos = 0
    while True:
        if pos + _EXTENSION.size > len(area):
            if file_ended:
                raise UnsafeImageError(
                    ErrorCode.TRUNCATED_HEADER,
                    "The qcow2 image ends in the middle of its header extensions.",
                )
            if pos < len(area) or area_end < cluster_size:
                # qemu keeps reading extensions up to the end of the first cluster;
                # if that lies beyond what we inspect, an unseen one could follow.
                raise UnsafeImageError(
                    ErrorCode.OVERSIZED_HEADER,
                    "The qcow2 header extensions are not terminated within the first "
                    f"{area_end} bytes, so they cannot be fully verified.",
                )
            return
        ext_type, ext_len = _EXTENSION.unpack_from(area, pos)
        pos += _EXTENSION.size
        if ext_type == _EXT_END:
            return
        if ext_len > len(area) - pos:
            if file_ended:
                raise UnsafeImageError(
                    ErrorCode.TRUNCATED_HEADER,
                    "The qcow2 image ends in the middle of its header extensions.",
                )
            raise UnsafeImageError(
                ErrorCode.OVERSIZED_HEADER,
                f"A qcow2 header extension claims {ext_len} bytes, more than the header "
                "cluster has room for.",
            )
        if ext_type == _EXT_DATA_FILE:
            raise UnsafeImageError(
                ErrorCode.DATA_FILE,
                "The qcow2 image names an external data file in its header extensions; "
                "such images could read other files on the host and are not accepted.",
            )
        if ext_type == _EXT_BACKING_FORMAT:
            raise UnsafeImageError(
                ErrorCode.BACKING_FILE,
                "The qcow2 image carries a backing-format header extension, which only "
                "images with backing files use; it is not accepted.",
            )
        pos += (ext_len + 7) & ~7
