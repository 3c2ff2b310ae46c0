"""The Storage protocol every backend implements, and the URL → backend factory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse


class StorageError(Exception):
    """A storage backend failed or was asked for something impossible (bad key, no object)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class Writer(Protocol):
    """A write in progress: invisible under its key until ``publish``."""

    def write(self, data: bytes) -> None: ...

    def publish(self) -> ObjectInfo: ...

    def abort(self) -> None: ...


class Storage(Protocol):
    def open_writer(self, key: str) -> Writer: ...

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]: ...

    def stat(self, key: str) -> ObjectInfo | None: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str = "") -> Iterator[str]: ...


def open_storage(url: str) -> Storage:
    """The backend named by ``url``: ``file:///dir`` (local)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from hostimage.storage.local import LocalStorage

        return LocalStorage(parsed.path)
    raise StorageError(f"Unsupported storage URL scheme: {parsed.scheme!r}")
