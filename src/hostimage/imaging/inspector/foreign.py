"""Formats qemu would recognise by probing but that this service does not accept.

Detecting them matters even though they are refused: content labelled "raw" that
qemu could probe as, say, QED (which has backing files) must never get through.
"""

from __future__ import annotations

from .errors import ErrorCode, UnsafeImageError

_VDI_SIGNATURE = b"\x7f\x10\xda\xbe"
_VDI_SIGNATURE_AT = 0x40
_PREFIXES: tuple[tuple[str, bytes], ...] = (
    ("qed", b"QED\0"),
    ("luks", b"LUKS\xba\xbe"),
    ("parallels", b"WithoutFreeSpace"),
    ("parallels", b"WithouFreSpacExt"),
    ("bochs", b"Bochs Virtual HD Image"),
    ("cloop", b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0"),
)


def identify(head: bytes) -> str | None:
    """Return the name of a refused format that ``head`` starts with, or None."""
    for name, prefix in _PREFIXES:
        if head.startswith(prefix):
            return name
    if head[_VDI_SIGNATURE_AT : _VDI_SIGNATURE_AT + 4] == _VDI_SIGNATURE:
        return "vdi"
    return None


def reject_if_foreign(head: bytes) -> None:
    """Raise UnsafeImageError when ``head`` belongs to a format that is not accepted."""
    name = identify(head)
    if name is not None:
        raise UnsafeImageError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"The image is in {name} format, which this service does not accept.",
        )
