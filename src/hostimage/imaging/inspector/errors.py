"""Errors raised by the image inspector.

Every refusal carries a stable machine-readable ``code`` and a message written as a
full sentence that can be shown to the person who uploaded the image.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable reasons for refusing an image; the values are part of the public API."""

    BACKING_FILE = "backing_file"
    DATA_FILE = "data_file"
    UNKNOWN_INCOMPATIBLE_FEATURES = "unknown_incompatible_features"
    UNSUPPORTED_FEATURE = "unsupported_feature"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNSUPPORTED_FORMAT = "unsupported_format"
    VMDK_CREATE_TYPE = "vmdk_create_type"
    VMDK_DESCRIPTOR = "vmdk_descriptor"
    VMDK_EXTENT = "vmdk_extent"
    FORMAT_MISMATCH = "format_mismatch"
    TRUNCATED_HEADER = "truncated_header"
    OVERSIZED_HEADER = "oversized_header"
    INVALID_HEADER = "invalid_header"
    UNSUPPORTED_LAYOUT = "unsupported_layout"


class FormatError(Exception):
    """Base class of everything the inspector raises about image content."""

    def __init__(self, code: ErrorCode | str, message: str) -> None:
        super().__init__(message)
        self.code: str = str(code)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take different constructor arguments; rebuild from the fields
        # so errors survive pickling, e.g. when reported by a worker process.
        return (_restore, (type(self), self.code, self.message))


class UnsafeImageError(FormatError):
    """The image must not be handed to qemu-img: it is unsafe, malformed or mislabelled."""


class TruncatedError(UnsafeImageError):
    """The file ends before a structure that the format requires is complete."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.TRUNCATED_HEADER, message)


def _restore(cls: type[FormatError], code: str, message: str) -> FormatError:
    error = cls.__new__(cls)
    FormatError.__init__(error, code, message)
    return error
