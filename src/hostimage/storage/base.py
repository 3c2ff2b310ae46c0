"""The Storage protocol every backend implements, and the URL → backend factory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

if TYPE_CHECKING:
    from hostimage.settings import Settings


class StorageError(Exception):
    """A storage backend failed or was asked for something impossible (bad key, no object)."""


_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def check_key(key: str) -> None:
    """Refuse keys every backend refuses: empty, absolute, ``..``, odd characters."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise StorageError(f"Invalid object key: {key!r}")


@dataclass(frozen=True)
class ObjectInfo:
    """A published object: its key, its size in bytes and, where known, when it was last
    written (UTC). ``modified`` is left out of comparisons: two infos of one object are equal
    whether or not they carry it."""

    key: str
    size: int
    modified: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class IncompleteWrite:
    """A write that was started and neither published nor aborted: its process died, or it
    stalled. Invisible under its key, but it takes space (a temporary file, the parts of an
    S3 multipart upload).

    ``ref`` is the backend's handle for :meth:`Storage.discard_incomplete` (a temporary
    file's name, an upload id); ``key`` the object key being written, when the backend knows
    it; ``size`` the bytes received so far; ``modified`` when bytes last arrived (UTC).
    """

    ref: str
    key: str | None
    size: int
    modified: datetime

    @property
    def name(self) -> str:
        """What to call it in a report: its key, else the backend's handle."""
        return self.key or self.ref


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

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every published object whose key starts with ``prefix``, with its size and last
        modification time, streamed (page by page, directory by directory): never the whole
        listing in memory. Objects published or deleted while the listing runs may or may not
        appear. Raises StorageError if the listing fails."""
        ...

    def incomplete_writes(self, older_than: datetime) -> Iterator[IncompleteWrite]:
        """The writes that were started and neither published nor aborted, and that have
        received no bytes since ``older_than`` (an aware datetime). A write still running
        keeps receiving bytes and so is not listed unless it stalled that long."""
        ...

    def discard_incomplete(self, write: IncompleteWrite) -> None:
        """Drop an incomplete write and the space it takes; its writer, if it still runs,
        can then no longer publish (StorageError). A write already gone is not an error.
        Raises StorageError if the backend refuses."""
        ...


def open_storage(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> Storage:
    """The backend named by ``url``: ``file:///dir`` (local) or ``s3://bucket/prefix`` (S3).

    The keyword arguments apply to ``s3://`` only (``None``: boto3's defaults, i.e. AWS S3 and
    credentials from the environment). The S3 bucket must already exist. Raises StorageError
    for an unknown scheme or a malformed URL.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from hostimage.storage.local import LocalStorage

        return LocalStorage(parsed.path)
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        if not bucket or "@" in bucket or ":" in bucket or parsed.query or parsed.fragment:
            raise StorageError(f"Malformed S3 storage URL (want s3://bucket/prefix): {url!r}")
        from hostimage.storage.s3 import S3Storage

        return S3Storage(
            bucket,
            parsed.path.strip("/"),
            endpoint_url=endpoint_url,
            region=region,
            access_key=access_key,
            secret_key=secret_key,
        )
    raise StorageError(f"Unsupported storage URL scheme: {parsed.scheme!r}")


def storage_from_settings(settings: Settings) -> Storage:
    """The backend the configuration names (``HOSTIMAGE_STORAGE_URL`` and ``HOSTIMAGE_S3_*``)."""
    return open_storage(
        settings.effective_storage_url,
        endpoint_url=settings.s3_endpoint,
        region=settings.s3_region,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
    )
