"""Microsoft VHDX images.

The headers and region table are checksummed and validated the way qemu does;
the metadata table is then followed to the virtual disk size. Differencing disks
(parent locator, or the HasParent flag) are refused.
"""

from __future__ import annotations

import struct
import uuid
from itertools import pairwise

from .crc32c import crc32c
from .errors import ErrorCode, UnsafeImageError
from .info import ImageInfo
from .source import KIB, MIB, Source

SIGNATURE = b"vhdxfile"

_HEADER_OFFSETS = (64 * KIB, 128 * KIB)
_HEADER_SIZE = 4 * KIB
_REGION_TABLE_OFFSET = 192 * KIB
_TABLE_SIZE = 64 * KIB
_MAX_ENTRIES = 2047

# signature, checksum, sequence_number, file_write_guid, data_write_guid,
# log_guid, log_version, version, log_length, log_offset
_HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")
_TABLE_HEADER = struct.Struct("<4sII")  # signature, checksum, entry_count
_REGION = struct.Struct("<16sQII")  # guid, file_offset, length, required
_META_HEADER = struct.Struct("<8sHH")  # signature, reserved, entry_count
_META_ENTRY = struct.Struct("<16sIII")  # item_id, offset, length, flags
_ENTRY_SIZE = 32

_BAT = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
_METADATA = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")

_FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
_VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
_PAGE83 = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
_LOGICAL_SECTOR = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
_PHYSICAL_SECTOR = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
_PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
_REQUIRED_ITEMS = frozenset(
    {_FILE_PARAMETERS, _VIRTUAL_DISK_SIZE, _PAGE83, _LOGICAL_SECTOR, _PHYSICAL_SECTOR}
)
# Items whose value we decode, with the number of bytes each needs.
_DECODED_ITEMS = {_FILE_PARAMETERS: 8, _VIRTUAL_DISK_SIZE: 8, _LOGICAL_SECTOR: 4}

_META_IS_REQUIRED = 1 << 2
_HAS_PARENT = 1 << 1
_MAX_VIRTUAL_SIZE = 64 * 1024 * 1024 * MIB


def matches(head: bytes) -> bool:
    """Return True when ``head`` starts with the VHDX file type identifier."""
    return head[:8] == SIGNATURE


def parse(src: Source) -> ImageInfo:
    """Validate a VHDX image and return its info; raises UnsafeImageError if unsafe."""
    version, log_pending = _current_header(src)
    regions = _region_table(src)
    meta_offset, meta_length = regions[_METADATA]
    items = _metadata_items(src, meta_offset, meta_length)

    block_size, flags = struct.unpack("<II", items[_FILE_PARAMETERS])
    (virtual_size,) = struct.unpack("<Q", items[_VIRTUAL_DISK_SIZE])
    (logical_sector,) = struct.unpack("<I", items[_LOGICAL_SECTOR])
    if flags & _HAS_PARENT:
        raise UnsafeImageError(
            ErrorCode.BACKING_FILE,
            "The VHDX is a differencing disk that refers to a parent image; images with "
            "backing files are not accepted.",
        )
    if not MIB <= block_size <= 256 * MIB or block_size & (block_size - 1):
        raise _invalid(f"The VHDX block size {block_size} is not a power of two of 1-256 MiB.")
    if logical_sector not in (512, 4096):
        raise _invalid(f"The VHDX logical sector size {logical_sector} is not 512 or 4096.")
    if not 0 < virtual_size <= _MAX_VIRTUAL_SIZE or virtual_size % logical_sector:
        raise _invalid(f"The VHDX virtual disk size {virtual_size} is not valid.")

    # Only now consult the total size: while streaming it is known last.
    for name, (offset, length) in (("BAT", regions[_BAT]), ("metadata", regions[_METADATA])):
        if offset + length > src.size:
            raise UnsafeImageError(
                ErrorCode.TRUNCATED_HEADER,
                f"The VHDX {name} region extends past the end of the file.",
            )
    return ImageInfo(
        format="vhdx",
        virtual_size=virtual_size,
        details={
            "version": version,
            "block_size": block_size,
            "logical_sector_size": logical_sector,
            "log_replay_pending": log_pending,
        },
    )


def _current_header(src: Source) -> tuple[int, bool]:
    """Pick the valid header with the highest sequence number, as qemu does."""
    best: tuple[int, int, bool] | None = None
    for offset in _HEADER_OFFSETS:
        raw = src.read_exact(offset, _HEADER_SIZE, "VHDX header")
        sig, checksum, sequence, _, _, log_guid, _, version, _, _ = _HEADER.unpack_from(raw)
        if sig != b"head" or crc32c(raw[:4] + b"\0\0\0\0" + raw[8:]) != checksum:
            continue
        if best is None or sequence > best[0]:
            best = (sequence, version, log_guid != bytes(16))
    if best is None:
        raise _invalid("Neither VHDX header has a valid signature and checksum.")
    if best[1] != 1:
        raise UnsafeImageError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"The VHDX header has version {best[1]}; only version 1 is accepted.",
        )
    return best[1], best[2]


def _region_table(src: Source) -> dict[uuid.UUID, tuple[int, int]]:
    raw = src.read_exact(_REGION_TABLE_OFFSET, _TABLE_SIZE, "VHDX region table")
    sig, checksum, count = _TABLE_HEADER.unpack_from(raw)
    if sig != b"regi":
        raise _invalid("The VHDX region table does not start with its 'regi' signature.")
    if crc32c(raw[:4] + b"\0\0\0\0" + raw[8:]) != checksum:
        raise _invalid("The VHDX region table checksum does not match its contents.")
    if count > _MAX_ENTRIES:
        raise _invalid(f"The VHDX region table claims {count} entries; at most 2047 exist.")
    regions: dict[uuid.UUID, tuple[int, int]] = {}
    spans: list[tuple[int, int]] = []
    for index in range(count):
        guid, offset, length, required = _REGION.unpack_from(raw, 16 + index * _ENTRY_SIZE)
        region = uuid.UUID(bytes_le=guid)
        if offset % MIB or length % MIB or offset < MIB or length == 0:
            raise _invalid("A VHDX region is not aligned to 1 MiB or lies inside the headers.")
        if region in (_BAT, _METADATA):
            if region in regions:
                raise _invalid("The VHDX region table lists the same region twice.")
            regions[region] = (offset, length)
        elif required & 1:
            raise UnsafeImageError(
                ErrorCode.UNSUPPORTED_FEATURE,
                f"The VHDX requires an unknown region {region}.",
            )
        spans.append((offset, offset + length))
    if _BAT not in regions or _METADATA not in regions:
        raise _invalid("The VHDX region table lacks the BAT or metadata region.")
    _check_disjoint(spans, "regions")
    return regions


def _metadata_items(src: Source, region_offset: int, region_length: int) -> dict[uuid.UUID, bytes]:
    """Return the raw values of the decoded metadata items."""
    raw = src.read_exact(region_offset, _TABLE_SIZE, "VHDX metadata table")
    sig, _, count = _META_HEADER.unpack_from(raw)
    if sig != b"metadata":
        raise _invalid("The VHDX metadata table does not start with its signature.")
    if count > _MAX_ENTRIES:
        raise _invalid(f"The VHDX metadata table claims {count} entries; at most 2047 exist.")
    wanted: list[tuple[int, uuid.UUID]] = []
    seen: set[uuid.UUID] = set()
    spans: list[tuple[int, int]] = []
    for index in range(count):
        guid, offset, length, flags = _META_ENTRY.unpack_from(raw, 32 + index * _ENTRY_SIZE)
        item = uuid.UUID(bytes_le=guid)
        if item == _PARENT_LOCATOR:
            raise UnsafeImageError(
                ErrorCode.BACKING_FILE,
                "The VHDX carries a parent locator, so it refers to a parent image; "
                "images with backing files are not accepted.",
            )
        if item in seen:
            raise _invalid("The VHDX metadata table lists the same item twice.")
        seen.add(item)
        if item not in _REQUIRED_ITEMS and flags & _META_IS_REQUIRED:
            raise UnsafeImageError(
                ErrorCode.UNSUPPORTED_FEATURE,
                f"The VHDX requires an unknown metadata item {item}.",
            )
        if length and (offset < _TABLE_SIZE or offset + length > region_length):
            raise _invalid("A VHDX metadata item lies outside the metadata region.")
        if length:
            spans.append((offset, offset + length))
        need = _DECODED_ITEMS.get(item)
        if need is not None:
            if length < need:
                raise _invalid(f"The VHDX metadata item {item} is only {length} bytes long.")
            wanted.append((offset, item))
    missing = _REQUIRED_ITEMS - seen
    if missing:
        raise _invalid("The VHDX metadata table lacks required items.")
    _check_disjoint(spans, "metadata items")
    # Read in file order so a streamed upload never has to look backwards.
    return {
        item: src.read_exact(region_offset + offset, _DECODED_ITEMS[item], "VHDX metadata")
        for offset, item in sorted(wanted)
    }


def _check_disjoint(spans: list[tuple[int, int]], what: str) -> None:
    ordered = sorted(spans)
    for (_, end), (start, _) in pairwise(ordered):
        if start < end:
            raise _invalid(f"The VHDX {what} overlap each other.")


def _invalid(message: str) -> UnsafeImageError:
    return UnsafeImageError(ErrorCode.INVALID_HEADER, message)
