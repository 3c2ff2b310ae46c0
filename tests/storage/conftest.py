"""Fixtures for the storage tests: one harness per backend (the S3 server is in
``tests/s3_peer.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostimage.storage.base import Storage
from hostimage.storage.local import LocalStorage
from hostimage.storage.memory import MemoryStorage
from hostimage.storage.s3 import S3Storage
from tests.s3_peer import S3Server


@dataclass(frozen=True)
class Harness:
    """A backend under test, and a look at what in-progress writes it has left behind
    (temporary files, incomplete multipart uploads)."""

    name: str
    storage: Storage
    leftovers: Callable[[], list[str]]


def incomplete_uploads(storage: S3Storage) -> list[str]:
    """Keys of multipart uploads started under ``storage``'s prefix and not yet finished."""
    resp = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=f"{storage.prefix}/")
    return [u["Key"] for u in resp.get("Uploads", [])]


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """Each backend in turn, empty. The S3 server starts only when an S3 test runs."""
    name = str(request.param)
    if name == "local":
        local = LocalStorage(tmp_path / "objects")
        tmp_dir = local.root / ".tmp"
        return Harness(name, local, lambda: sorted(p.name for p in tmp_dir.iterdir()))
    if name == "memory":
        return Harness(name, MemoryStorage(), list)
    server: S3Server = request.getfixturevalue("s3_server")
    s3 = server.storage(uuid.uuid4().hex[:12])
    return Harness(name, s3, lambda: incomplete_uploads(s3))
