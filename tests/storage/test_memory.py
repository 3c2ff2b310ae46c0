"""What the memory backend promises beyond the shared contract."""

from __future__ import annotations

import pytest

from hostimage.storage.base import StorageError
from hostimage.storage.memory import MemoryStorage


def test_finished_writer_refuses_more() -> None:
    storage = MemoryStorage()
    writer = storage.open_writer("k")
    writer.write(b"1")
    writer.publish()
    with pytest.raises(StorageError):
        writer.write(b"2")
    with pytest.raises(StorageError):
        writer.publish()
    aborted = storage.open_writer("j")
    aborted.abort()
    with pytest.raises(StorageError):
        aborted.write(b"x")
    assert storage.stat("j") is None


def test_read_sees_the_object_as_it_was_when_started() -> None:
    storage = MemoryStorage()
    for data in (b"a" * 10, b"b" * 10):
        writer = storage.open_writer("k")
        writer.write(data)
        writer.publish()
        if data.startswith(b"a"):
            reader = storage.read("k", chunk_size=4)
    storage.delete("k")
    assert b"".join(reader) == b"a" * 10


def test_instances_do_not_share_objects() -> None:
    one, two = MemoryStorage(), MemoryStorage()
    writer = one.open_writer("k")
    writer.write(b"x")
    writer.publish()
    assert two.stat("k") is None
