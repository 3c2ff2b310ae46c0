"""In-memory storage: the Storage protocol's semantics without disk or network, for tests.

Same rules as the other backends: keys are validated like the local backend's, a writer's
bytes are invisible until ``publish``, ``abort`` drops them, reads see the object as it was
when the read started. Thread-safe. Everything is lost with the process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from hostimage.storage.base import ObjectInfo, StorageError, check_key


class MemoryWriter:
    """A write in progress: buffered privately until ``publish`` stores it under its key."""

    def __init__(self, storage: MemoryStorage, key: str) -> None:
        self._storage = storage
        self._key = key
        self._buffer = bytearray()
        self._state = "open"  # open → published | aborted

    def write(self, data: bytes) -> None:
        """Append ``data``. Raises StorageError once the writer is published or aborted."""
        if self._state != "open":
            raise StorageError(f"Writer for {self._key!r} is {self._state}")
        self._buffer += data

    def publish(self) -> ObjectInfo:
        """Make the object visible under its key at once (replacing any object there)."""
        if self._state != "open":
            raise StorageError(f"Writer for {self._key!r} is {self._state}")
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._state = "published"
        self._storage._put(self._key, data)
        return ObjectInfo(key=self._key, size=len(data))

    def abort(self) -> None:
        """Drop everything written. Idempotent, and a no-op after ``publish``."""
        if self._state == "open":
            self._state = "aborted"
            self._buffer = bytearray()


class MemoryStorage:
    """Objects in a dict, guarded by a lock."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[key] = data

    def _get(self, key: str) -> bytes | None:
        check_key(key)
        with self._lock:
            return self._objects.get(key)

    def open_writer(self, key: str) -> MemoryWriter:
        """A writer for ``key`` (validated now); nothing is visible until ``publish``."""
        check_key(key)
        return MemoryWriter(self, key)

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
        """Size of the published object at ``key``, or None if there is none."""
        data = self._get(key)
        return None if data is None else ObjectInfo(key=key, size=len(data))

    def delete(self, key: str) -> None:
        """Remove the object at ``key``; deleting a missing object is not an error."""
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of published objects starting with ``prefix``, sorted (a snapshot)."""
        with self._lock:
            found = sorted(k for k in self._objects if k.startswith(prefix))
        return iter(found)
