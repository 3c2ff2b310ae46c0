"""Bytes of images: a Storage protocol; local filesystem (default), S3, and in memory."""

from hostimage.storage.base import (
    IncompleteWrite,
    ObjectInfo,
    Storage,
    StorageError,
    Writer,
    open_storage,
    storage_from_settings,
)

__all__ = [
    "IncompleteWrite",
    "ObjectInfo",
    "Storage",
    "StorageError",
    "Writer",
    "open_storage",
    "storage_from_settings",
]
