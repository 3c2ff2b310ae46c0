"""In-memory storage: the Storage protocol's semantics without disk or network, for tests.

Same rules as the other backends: keys are validated like the local backend's, a writer's
bytes are invisible until ``publish``, ``abort`` drops them, reads see the object as it was
when the read started. Writers still open count as incomplete writes (a writer dropped
unpublished leaves nothing behind). Thread-safe. Everything is lost with the process.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime

from hostimage.storage.base import IncompleteWrite, ObjectInfo, StorageError, check_key


def _now() -> datetime:
    return datetime.now(UTC)


class MemoryWriter:
    """A write in progress: buffered privately until ``publish`` stores it under its key."""

    def __init__(self, storage: MemoryStorage, key: str) -> None:
        self._storage = storage
        self._key = key
        self._buffer = bytearray()
        self._state = "open"  # open → published | aborted | discarded
        self.ref = uuid.uuid4().hex
        self.modified = _now()

    def write(self, data: bytes) -> None:
        """Append ``data``. Raises StorageError once the writer is published, aborted or
        discarded."""
        if self._state != "open":
            raise StorageError(f"Writer for {self._key!r} is {self._state}")
        self._buffer += data
        self.modified = _now()

    def incomplete(self) -> IncompleteWrite:
        return IncompleteWrite(
            ref=self.ref, key=self._key, size=len(self._buffer), modified=self.modified
        )

    def discard(self) -> None:
        if self._state == "open":
            self._state = "discarded"
            self._buffer = bytearray()

    def publish(self) -> ObjectInfo:
        """Make the object visible under its key at once (replacing any object there)."""
        if self._state != "open":
            raise StorageError(f"Writer for {self._key!r} is {self._state}")
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._state = "published"
        self._storage._put(self._key, data)
        self._storage._forget(self.ref)
        return ObjectInfo(key=self._key, size=len(data))

    def abort(self) -> None:
        """Drop everything written. Idempotent, and a no-op after ``publish``."""
        if self._state == "open":
            self._state = "aborted"
            self._buffer = bytearray()
            self._storage._forget(self.ref)


class MemoryStorage:
    """Objects in a dict (with the time each was stored), guarded by a lock."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, datetime]] = {}
        self._writers: weakref.WeakValueDictionary[str, MemoryWriter] = (
            weakref.WeakValueDictionary()
        )
        self._lock = threading.Lock()

    def _forget(self, ref: str) -> MemoryWriter | None:
        with self._lock:
            return self._writers.pop(ref, None)

    def _put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[key] = (data, _now())

    def _get(self, key: str) -> bytes | None:
        check_key(key)
        with self._lock:
            found = self._objects.get(key)
        return None if found is None else found[0]

    def open_writer(self, key: str) -> MemoryWriter:
        """A writer for ``key`` (validated now); nothing is visible until ``publish``."""
        check_key(key)
        writer = MemoryWriter(self, key)
        with self._lock:
            self._writers[writer.ref] = writer
        return writer

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of the object (``end=None``: to its end; a range past the end
        is cut short) in chunks of at most ``chunk_size``. Raises StorageError at once if the
        object does not exist."""
        data = self._get(key)
        if data is None:
            raise StorageError(f"No such object: {key}")
        if start < 0 or (end is not None and end < 0) or chunk_size < 1:
            raise StorageError(f"Invalid read of {key!r}: start={start} end={end}")
        stop = len(data) if end is None else min(end, len(data))

        def chunks() -> Iterator[bytes]:
            view = memoryview(data)
            for pos in range(start, stop, chunk_size):
                yield bytes(view[pos : min(pos + chunk_size, stop)])

        return chunks()

    def stat(self, key: str) -> ObjectInfo | None:
        """Size and time stored of the object at ``key``, or None if there is none."""
        check_key(key)
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            return None
        return ObjectInfo(key=key, size=len(found[0]), modified=found[1])

    def delete(self, key: str) -> None:
        """Remove the object at ``key``; deleting a missing object is not an error."""
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of published objects starting with ``prefix``, sorted (a snapshot)."""
        return (info.key for info in self.list_objects(prefix))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Published objects whose key starts with ``prefix``, sorted by key (a snapshot)."""
        with self._lock:
            found = [
                ObjectInfo(key=k, size=len(data), modified=when)
                for k, (data, when) in self._objects.items()
                if k.startswith(prefix)
            ]
        return iter(sorted(found, key=lambda info: info.key))

    def incomplete_writes(self, older_than: datetime) -> Iterator[IncompleteWrite]:
        """Writers still open that were last written to before ``older_than``."""
        with self._lock:
            writers = list(self._writers.values())
        found = [w.incomplete() for w in writers if w.modified < older_than]
        return iter(sorted(found, key=lambda w: w.modified))

    def discard_incomplete(self, write: IncompleteWrite) -> None:
        """Drop the writer's bytes; it can no longer write or publish."""
        writer = self._forget(write.ref)
        if writer is not None:
            writer.discard()
