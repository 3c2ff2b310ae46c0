"""Format detection and the declared-format rule."""

from __future__ import annotations

from . import foreign, iso, qcow2, raw, vhd, vhdx, vmdk
from .errors import ErrorCode, UnsafeImageError
from .info import ACCEPTED_FORMATS, ImageInfo
from .source import PROBE_BYTES, ReadAt, Source

_ALIASES = {"vpc": "vhd"}


def detect(read_at: ReadAt, size: int) -> ImageInfo:
    """Detect the format of an image of ``size`` bytes and run that format's safety checks.

    ``read_at(offset, length)`` must return the bytes at ``offset``, short only at
    the end of the image. Returns the image's info, or raises a FormatError subclass
    (in practice UnsafeImageError) if the image is unsafe, malformed or refused.
    At most a few MiB are read, whatever the image size.
    """
    if size < 0:
        raise ValueError("size must not be negative")
    return detect_source(Source(read_at, size))


def detect_source(src: Source) -> ImageInfo:
    """Detect and validate the image behind ``src``; see :func:`detect`."""
    head = src.read(0, PROBE_BYTES)
    # Header magics first, so a polyglot is judged by what qemu would see.
    if qcow2.matches(head):
        return qcow2.parse(src)
    if vmdk.matches(head):
        return vmdk.parse(src)
    if vhdx.matches(head):
        return vhdx.parse(src)
    if vhd.matches(head):
        return vhd.parse(src, 0)
    foreign.reject_if_foreign(head)
    if vmdk.is_text_descriptor(head):
        vmdk.reject_text_descriptor(head)
    if vhd.has_trailing_footer(src):
        return vhd.parse(src, src.size - vhd.FOOTER_SIZE)
    if iso.matches(head):
        return iso.parse(src, head)
    return raw.parse(src, head)


def normalize_format(declared: str) -> str:
    """Return the canonical name of a declared format, or raise UnsafeImageError.

    Accepts qemu's alias ``vpc`` for ``vhd`` and ignores case and surrounding spaces.
    """
    name = declared.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in ACCEPTED_FORMATS:
        shown = declared[:32]
        raise UnsafeImageError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"The declared format {shown!r} is not accepted; use one of "
            f"{', '.join(ACCEPTED_FORMATS)}.",
        )
    return name


def check_declared(info: ImageInfo, declared: str | None) -> ImageInfo:
    """Return ``info`` if its detected format may be stored under ``declared``.

    An ISO may be declared raw, since qemu reads it as raw bytes; every other
    difference, including raw declared as iso, raises UnsafeImageError with code
    "format_mismatch". ``None`` means no format was declared.
    """
    if declared is None:
        return info
    wanted = normalize_format(declared)
    if wanted == info.format or (wanted == "raw" and info.format == "iso"):
        return info
    if wanted == "iso":
        message = (
            "The image was declared as iso but has no ISO 9660 signature "
            f"('CD001' at offset {iso.SIGNATURE_OFFSET:#x}); its content is "
            f"{_describe(info.format)}."
        )
    else:
        message = (
            f"The image was declared as {wanted} but its content is "
            f"{_describe(info.format)}; refusing it so qemu cannot interpret it differently."
        )
    raise UnsafeImageError(ErrorCode.FORMAT_MISMATCH, message)


def _describe(fmt: str) -> str:
    if fmt == "raw":
        return "raw data without any image header"
    if fmt == "iso":
        return "an ISO 9660 image"
    return f"a {fmt} image"
