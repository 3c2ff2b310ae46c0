"""Inspect an image stored in a file or readable file object."""

from __future__ import annotations

import os
from typing import BinaryIO

from .detect import check_declared, detect, normalize_format
from .info import ImageInfo
from .source import MIB
from .stream import StreamInspector

_CHUNK = 1 * MIB


def inspect(
    path_or_fileobj: str | os.PathLike[str] | BinaryIO,
    declared_format: str | None = None,
) -> ImageInfo:
    """Detect an image's format, run its safety checks and enforce the declared format.

    Accepts a path or a binary file object. Seekable objects are read at the few
    offsets the format needs and their position is restored; others are streamed
    through :class:`StreamInspector`. Returns the image info, or raises a
    FormatError subclass (UnsafeImageError) when the image must not be used.
    Memory use is bounded whatever the file size.
    """
    if declared_format is not None:
        normalize_format(declared_format)
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(path_or_fileobj, "rb") as handle:
            return _inspect_fileobj(handle, declared_format)
    return _inspect_fileobj(path_or_fileobj, declared_format)


def _inspect_fileobj(fileobj: BinaryIO, declared_format: str | None) -> ImageInfo:
    if fileobj.seekable():
        position = fileobj.tell()
        try:
            return _inspect_seekable(fileobj, declared_format)
        finally:
            fileobj.seek(position)
    stream = StreamInspector()
    while chunk := fileobj.read(_CHUNK):
        stream.feed(chunk)
    return stream.finish(declared_format)


def _inspect_seekable(fileobj: BinaryIO, declared_format: str | None) -> ImageInfo:
    size = fileobj.seek(0, os.SEEK_END)

    def read_at(offset: int, length: int) -> bytes:
        fileobj.seek(offset)
        return fileobj.read(length)

    return check_declared(detect(read_at, size), declared_format)
