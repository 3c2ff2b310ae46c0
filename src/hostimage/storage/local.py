"""Local-filesystem storage: temporary name, fsync, atomic rename; keys never escape the root.

A writer's bytes go to ``<root>/.tmp/<random>.part`` and are renamed onto the object's path on
publish. A process that dies mid-write leaves its ``.part`` file behind; the garbage
collector finds it with :meth:`LocalStorage.incomplete_writes` once it has not grown for the
grace period. Deleting an object also removes the directories it leaves empty.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from hostimage.storage.base import IncompleteWrite, ObjectInfo, StorageError, check_key

TMP_DIR = ".tmp"
PART_SUFFIX = ".part"
_PUBLISH_ATTEMPTS = 5


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
        """Make the object visible under its key at once (replacing any object there). Raises
        StorageError if the temporary file was discarded meanwhile (a stalled write the
        garbage collector removed)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        for _ in range(_PUBLISH_ATTEMPTS):
            try:
                os.replace(self._tmp, self._final)
                break
            except FileNotFoundError:
                if not self._tmp.exists():
                    raise StorageError(
                        f"Publishing {self._key!r} failed: its temporary file was discarded."
                    ) from None
                # A delete of the last object beside it removed the directory: make it again.
                self._final.parent.mkdir(parents=True, exist_ok=True)
        else:
            raise StorageError(f"Publishing {self._key!r} failed: its directory keeps vanishing.")
        _fsync_dir(self._final.parent)
        return ObjectInfo(key=self._key, size=self._size)

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = self.root / TMP_DIR
        self.tmp_dir.mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError(f"Object key escapes the storage root: {key!r}")
        return path

    def open_writer(self, key: str) -> LocalWriter:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / f"{uuid.uuid4().hex}{PART_SUFFIX}"
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
        """Size and modification time of the object at ``key``, or None if there is none."""
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if not path.is_file():
            return None
        return ObjectInfo(key=key, size=st.st_size, modified=_utc(st.st_mtime))

    def delete(self, key: str) -> None:
        """Remove the object at ``key`` and the directories that leaves empty; deleting a
        missing object is not an error. Raises StorageError if the file system refuses."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            # The message names the key, never the server's path (it reaches tenants).
            raise StorageError(f"Deleting {key!r} failed: {exc.strerror or exc}") from exc
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove ``directory`` and its parents up to the root while they are empty (a writer
        that loses its directory this way makes it again on publish)."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError:  # not empty (or not ours to remove): stop here
                return
            directory = directory.parent

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of published objects starting with ``prefix``, in no particular order."""
        return (info.key for info in self.list_objects(prefix))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, walked one directory at a time
        (``os.scandir``, in directory order), descending only into directories that can hold
        such keys. Files whose names are not valid keys, symbolic links and the temporary
        directory are not objects and are skipped."""
        try:
            yield from self._walk(self.root, "", prefix)
        except OSError as exc:
            raise StorageError(
                f"Listing objects under {prefix!r} failed: {exc.strerror or exc}"
            ) from exc

    def _walk(self, directory: Path, base: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = os.scandir(directory)
        except FileNotFoundError:  # pruned while we walked
            return
        with entries:
            for entry in entries:
                key = base + entry.name
                if entry.is_dir(follow_symlinks=False):
                    below = key + "/"
                    if (below.startswith(prefix) or prefix.startswith(below)) and _valid(key):
                        yield from self._walk(Path(entry.path), below, prefix)
                elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                    if not _valid(key):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # deleted while we walked
                        continue
                    yield ObjectInfo(key=key, size=st.st_size, modified=_utc(st.st_mtime))

    def incomplete_writes(self, older_than: datetime) -> Iterator[IncompleteWrite]:
        """The ``.part`` files of the temporary directory last written before
        ``older_than``; ``ref`` is the file's name there, ``key`` is unknown (None)."""
        try:
            entries = os.scandir(self.tmp_dir)
        except OSError as exc:
            raise StorageError(f"Listing incomplete writes failed: {exc.strerror or exc}") from exc
        with entries:
            for entry in entries:
                if not entry.name.endswith(PART_SUFFIX) or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # published or aborted meanwhile
                    continue
                modified = _utc(st.st_mtime)
                if modified < older_than:
                    yield IncompleteWrite(
                        ref=f"{TMP_DIR}/{entry.name}", key=None, size=st.st_size, modified=modified
                    )

    def discard_incomplete(self, write: IncompleteWrite) -> None:
        """Remove the temporary file, unless it was written to since it was listed (its
        writer is alive after all: it is left alone)."""
        name = write.ref.removeprefix(f"{TMP_DIR}/")
        if "/" in name or not name.endswith(PART_SUFFIX) or name.startswith("."):
            raise StorageError(f"Not an incomplete write: {write.ref!r}")
        path = self.tmp_dir / name
        try:
            if _utc(path.stat().st_mtime) > write.modified:
                return
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"Discarding {write.ref!r} failed: {exc.strerror or exc}") from exc


def _valid(key: str) -> bool:
    try:
        check_key(key)
    except StorageError:
        return False
    return True
