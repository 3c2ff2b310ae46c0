"""Local-filesystem storage: temporary name, fsync, atomic rename; keys never escape the root."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from hostimage.storage.base import ObjectInfo, StorageError, check_key


class LocalWriter:
    def __init__(self, key: str, final: Path, tmp: Path) -> None:
        self._key = key
        self._final = final
        self._tmp = tmp
        self._fh = open(tmp, "wb")  # noqa: SIM115 (closed in publish/abort)
        self._size = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._size += len(data)

    def publish(self) -> ObjectInfo:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self._final)
        dir_fd = os.open(self._final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return ObjectInfo(key=self._key, size=self._size)

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".tmp").mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError(f"Object key escapes the storage root: {key!r}")
        return path

    def open_writer(self, key: str) -> LocalWriter:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / ".tmp" / f"{uuid.uuid4().hex}.part"
        return LocalWriter(key, final, tmp)

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        path = self._path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115 (closed in the generator)
        except FileNotFoundError as exc:
            raise StorageError(f"No such object: {key}") from exc

        def chunks() -> Iterator[bytes]:
            with fh:
                fh.seek(start)
                remaining = None if end is None else end - start
                while remaining is None or remaining > 0:
                    n = chunk_size if remaining is None else min(chunk_size, remaining)
                    data = fh.read(n)
                    if not data:
                        return
                    if remaining is not None:
                        remaining -= len(data)
                    yield data

        return chunks()

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            return ObjectInfo(key=key, size=path.stat().st_size)
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and ".tmp" not in path.relative_to(self.root).parts:
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key
