"""Bytes of images: a Storage protocol with local-filesystem (default) backend."""

from hostimage.storage.base import ObjectInfo, Storage, StorageError, Writer, open_storage

__all__ = ["ObjectInfo", "Storage", "StorageError", "Writer", "open_storage"]
