"""Moving image bytes between files and storage, hashing on the way."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hostimage.errors import Conflict
from hostimage.storage import Storage

CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    checksum: str


def store_file(storage: Storage, key: str, path: Path) -> Stored:
    """Stream a file into storage under ``key``, computing SHA-256 while writing; the object
    appears only when complete (published atomically)."""
    digest = hashlib.sha256()
    size = 0
    writer = storage.open_writer(key)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
        writer.publish()
    except BaseException:
        writer.abort()
        raise
    return Stored(key=key, size=size, checksum=f"sha256:{digest.hexdigest()}")


def fetch_verified(storage: Storage, key: str, dest: Path, checksum: str | None) -> int:
    """Copy an object to ``dest`` and verify its SHA-256 against ``checksum`` (409 on a
    mismatch, which means stored data was damaged); returns the size."""
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as fh:
        for chunk in storage.read(key, chunk_size=CHUNK):
            digest.update(chunk)
            fh.write(chunk)
            size += len(chunk)
    if checksum and f"sha256:{digest.hexdigest()}" != checksum:
        dest.unlink(missing_ok=True)
        raise Conflict(
            f"Stored data of {key} does not match its checksum; it may be damaged.",
            code="checksum_mismatch",
        )
    return size
