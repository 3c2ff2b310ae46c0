"""Pure-Python safety gate run on every disk image before qemu-img opens it.

It detects qcow2, vmdk, vhd, vhdx, raw and iso content, refuses images that could
make qemu read other host files (backing files, external data files, VMDK
descriptors with extents) or that are malformed, and refuses content whose real
format differs from the declared one. Memory use is bounded for any input.

Entry points: :func:`inspect` for files, :class:`StreamInspector` for uploads in
progress, and :func:`detect` for any random-access reader.
"""

from .detect import check_declared, detect
from .errors import ErrorCode, FormatError, TruncatedError, UnsafeImageError
from .files import inspect
from .info import ACCEPTED_FORMATS, ImageInfo
from .source import ReadAt
from .stream import StreamInspector

__all__ = [
    "ACCEPTED_FORMATS",
    "ErrorCode",
    "FormatError",
    "ImageInfo",
    "ReadAt",
    "StreamInspector",
    "TruncatedError",
    "UnsafeImageError",
    "check_declared",
    "detect",
    "inspect",
]
