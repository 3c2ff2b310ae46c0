"""The Storage contract, one suite run against every backend: local (a temporary directory),
memory, and S3.

Production stores objects on MinIO, Ceph RGW or AWS S3. None of those can run here, so the S3
backend is tested against moto's S3 server: a real HTTP server speaking the S3 protocol
(signed requests, multipart uploads, ranged GETs, listings), started on loopback by the
``s3_server`` fixture. ``HOSTIMAGE_TEST_S3_ENDPOINT`` points the suite at another S3 server
(a local MinIO, for instance) instead.
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Generator
from datetime import UTC, datetime, timedelta

import pytest

from hostimage.storage.base import ObjectInfo, Storage, StorageError
from tests.storage.conftest import Harness

MIB = 1024 * 1024
PART = 16 * MIB  # the S3 backend's default part size


def _payload(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that differ at every offset and between seeds (misplaced parts show)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 128  # 4 KiB
        counter += 1
    return bytes(out[:size])


@pytest.fixture(scope="module")
def big() -> bytes:
    """40 MiB: more than two S3 parts and a partial third."""
    return os.urandom(40 * MIB)


def _put(storage: Storage, key: str, data: bytes, piece: int = 1 * MIB + 3) -> ObjectInfo:
    writer = storage.open_writer(key)
    for i in range(0, len(data), piece):
        writer.write(data[i : i + piece])
    return writer.publish()


def _read(storage: Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(storage.read(key, start, end))


def _absent(storage: Storage, key: str) -> None:
    assert storage.stat(key) is None
    assert key not in list(storage.keys())
    with pytest.raises(StorageError):
        storage.read(key)


# --- write, publish, read back -----------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000, 64 * 1024])
def test_small_object_round_trip(store: Harness, size: int) -> None:
    data = _payload(size)
    info = _put(store.storage, "images/small.raw", data)
    assert info == ObjectInfo(key="images/small.raw", size=size)
    assert store.storage.stat("images/small.raw") == info
    assert _read(store.storage, "images/small.raw") == data
    assert store.leftovers() == []


def test_multipart_object_round_trip(store: Harness, big: bytes) -> None:
    info = _put(store.storage, "images/big.qcow2", big)
    assert info == ObjectInfo(key="images/big.qcow2", size=len(big))
    assert store.storage.stat("images/big.qcow2") == info
    chunks = list(store.storage.read("images/big.qcow2", chunk_size=4 * MIB))
    assert all(0 < len(c) <= 4 * MIB for c in chunks)
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(big).digest()
    # ranges across the part boundaries, and the tail
    assert (
        _read(store.storage, "images/big.qcow2", PART - 10, PART + 10) == big[PART - 10 : PART + 10]
    )
    assert (
        _read(store.storage, "images/big.qcow2", 2 * PART - 1, 2 * PART + 1)
        == big[2 * PART - 1 : 2 * PART + 1]
    )
    assert _read(store.storage, "images/big.qcow2", len(big) - 5) == big[-5:]
    assert store.leftovers() == []


def test_one_large_write_round_trip(store: Harness) -> None:
    data = _payload(PART + PART // 2, seed=7)
    info = _put(store.storage, "one-write", data, piece=len(data))
    assert info.size == len(data)
    assert _read(store.storage, "one-write") == data


def test_exactly_one_part(store: Harness) -> None:
    data = _payload(PART, seed=3)
    assert _put(store.storage, "exact", data).size == PART
    assert _read(store.storage, "exact") == data
    assert store.leftovers() == []


def test_publish_replaces_existing_object(store: Harness) -> None:
    _put(store.storage, "k", b"old contents")
    _put(store.storage, "k", b"new")
    assert _read(store.storage, "k") == b"new"
    assert store.storage.stat("k") == ObjectInfo(key="k", size=3)
    assert list(store.storage.keys()) == ["k"]


# --- ranged reads ---------------------------------------------------------------------------

SIZE = 100_000


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),
        (0, 10),
        (1234, 56789),
        (SIZE - 3, None),
        (SIZE - 1, SIZE),
        (0, SIZE + 500),  # end past the object: cut short
        (SIZE - 10, SIZE + 500),
        (500, 500),  # empty range
        (600, 500),  # end before start: empty
        (SIZE, None),  # starting at the end: empty
        (SIZE + 10, None),  # starting past the end: empty
        (SIZE + 10, SIZE + 20),
    ],
)
def test_ranged_read(store: Harness, start: int, end: int | None) -> None:
    data = _payload(SIZE, seed=1)
    _put(store.storage, "ranged", data)
    chunks = list(store.storage.read("ranged", start, end, chunk_size=4096))
    assert all(0 < len(c) <= 4096 for c in chunks)
    assert b"".join(chunks) == data[start:end]


def test_read_of_empty_object(store: Harness) -> None:
    _put(store.storage, "empty", b"")
    assert _read(store.storage, "empty") == b""
    assert _read(store.storage, "empty", 0, 10) == b""
    assert _read(store.storage, "empty", 5) == b""


def test_read_missing_object_raises_at_once(store: Harness) -> None:
    with pytest.raises(StorageError):
        store.storage.read("missing")
    with pytest.raises(StorageError):
        store.storage.read("missing", 10, 20)
    with pytest.raises(StorageError):
        store.storage.read("missing", 10, 10)


def test_read_abandoned_part_way(store: Harness) -> None:
    data = _payload(3 * MIB, seed=2)
    _put(store.storage, "abandoned", data)
    reader = store.storage.read("abandoned", chunk_size=64 * 1024)
    assert isinstance(reader, Generator)
    assert next(reader) == data[: 64 * 1024]
    reader.close()
    assert _read(store.storage, "abandoned", MIB, MIB + 5) == data[MIB : MIB + 5]


# --- stat, delete, keys ----------------------------------------------------------------------


def test_stat_missing_is_none(store: Harness) -> None:
    assert store.storage.stat("nothing/here") is None


def test_delete_is_idempotent(store: Harness) -> None:
    _put(store.storage, "a/doomed", b"bytes")
    _put(store.storage, "a/kept", b"other")
    store.storage.delete("a/doomed")
    _absent(store.storage, "a/doomed")
    store.storage.delete("a/doomed")
    store.storage.delete("never/existed")
    assert list(store.storage.keys()) == ["a/kept"]
    assert _read(store.storage, "a/kept") == b"other"


def test_keys_with_prefix(store: Harness) -> None:
    for key in ["a/1", "a/2", "a/sub/3", "ab", "b/1"]:
        _put(store.storage, key, key.encode())
    assert sorted(store.storage.keys()) == ["a/1", "a/2", "a/sub/3", "ab", "b/1"]
    assert sorted(store.storage.keys("a/")) == ["a/1", "a/2", "a/sub/3"]
    assert sorted(store.storage.keys("a")) == ["a/1", "a/2", "a/sub/3", "ab"]
    assert sorted(store.storage.keys("a/sub/")) == ["a/sub/3"]
    assert list(store.storage.keys("zzz")) == []


def test_keys_of_empty_storage(store: Harness) -> None:
    assert list(store.storage.keys()) == []


# --- unpublished and aborted writers ------------------------------------------------------


@pytest.mark.parametrize("size", [10, PART + MIB], ids=["tiny", "past-one-part"])
def test_abort_leaves_nothing(store: Harness, size: int) -> None:
    writer = store.storage.open_writer("aborted/obj")
    writer.write(_payload(size))
    writer.abort()
    _absent(store.storage, "aborted/obj")
    assert list(store.storage.keys()) == []
    assert store.leftovers() == []
    writer.abort()  # idempotent
    assert store.leftovers() == []


def test_abort_after_publish_keeps_the_object(store: Harness) -> None:
    writer = store.storage.open_writer("kept")
    writer.write(b"data")
    writer.publish()
    writer.abort()
    assert _read(store.storage, "kept") == b"data"


@pytest.mark.parametrize("size", [10, PART + MIB], ids=["tiny", "past-one-part"])
def test_unpublished_writer_is_invisible(store: Harness, size: int) -> None:
    data = _payload(size, seed=5)
    writer = store.storage.open_writer("pending/obj")
    writer.write(data)
    _absent(store.storage, "pending/obj")
    assert list(store.storage.keys("pending/")) == []
    info = writer.publish()
    assert info.size == size
    assert _read(store.storage, "pending/obj") == data
    assert store.leftovers() == []


def test_unpublished_writer_leaves_old_object_in_place(store: Harness) -> None:
    _put(store.storage, "obj", b"version 1")
    writer = store.storage.open_writer("obj")
    writer.write(_payload(PART + 10))
    assert _read(store.storage, "obj") == b"version 1"
    assert store.storage.stat("obj") == ObjectInfo(key="obj", size=9)
    writer.abort()
    assert _read(store.storage, "obj") == b"version 1"
    assert store.leftovers() == []


def test_dropped_writer_publishes_nothing(store: Harness) -> None:
    writer = store.storage.open_writer("dropped")
    writer.write(_payload(PART + 10))
    del writer
    gc.collect()
    _absent(store.storage, "dropped")


# --- key validation --------------------------------------------------------------------------

BAD_KEYS = [
    "",
    "/abs",
    "/etc/passwd",
    "../x",
    "a/../x",
    "a/..",
    "..",
    ".",
    "./x",
    "a//b",
    "a/",
    ".hidden",
    "a/.tmp",
    "a\\b",
    "with space",
    "nul\x00byte",
    "ünïcode",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(store: Harness, key: str) -> None:
    with pytest.raises(StorageError):
        store.storage.open_writer(key)
    with pytest.raises(StorageError):
        store.storage.read(key)
    with pytest.raises(StorageError):
        store.storage.stat(key)
    with pytest.raises(StorageError):
        store.storage.delete(key)
    assert list(store.storage.keys()) == []


@pytest.mark.parametrize("key", ["a", "A0", "images/2024/disk-1.qcow2", "x/y_z.v2/0"])
def test_good_keys_are_accepted(store: Harness, key: str) -> None:
    _put(store.storage, key, b"ok")
    assert _read(store.storage, key) == b"ok"
    assert list(store.storage.keys()) == [key]


# --- listing with times, incomplete writes (what the garbage collector relies on) ----------


def _utcnow() -> datetime:
    return datetime.now(UTC)


# S3 listings give whole seconds, and the test server's clock is this machine's.
CLOCK_SLACK = timedelta(seconds=2)


def test_list_objects_gives_sizes_and_times(store: Harness) -> None:
    before = _utcnow()
    for key, data in [("a/1", b"one"), ("a/sub/2", b"two!"), ("b", b"")]:
        _put(store.storage, key, data)
    after = _utcnow()
    listed = {info.key: info for info in store.storage.list_objects()}
    assert sorted(listed) == ["a/1", "a/sub/2", "b"]
    assert [listed[k].size for k in ("a/1", "a/sub/2", "b")] == [3, 4, 0]
    for info in listed.values():
        assert info.modified is not None
        assert info.modified.utcoffset() == timedelta(0)
        assert before - CLOCK_SLACK <= info.modified <= after + CLOCK_SLACK
        stat = store.storage.stat(info.key)
        assert stat == info
        assert stat is not None and stat.modified is not None
        assert abs(stat.modified - info.modified) <= CLOCK_SLACK
    assert sorted(i.key for i in store.storage.list_objects("a/")) == ["a/1", "a/sub/2"]
    assert sorted(i.key for i in store.storage.list_objects("a/s")) == ["a/sub/2"]
    assert list(store.storage.list_objects("c")) == []


def test_list_objects_sees_deletes_and_rewrites(store: Harness) -> None:
    _put(store.storage, "x/gone", b"1")
    _put(store.storage, "x/kept", b"22")
    store.storage.delete("x/gone")
    _put(store.storage, "x/kept", b"333")
    assert [(i.key, i.size) for i in store.storage.list_objects()] == [("x/kept", 3)]


def test_listing_can_delete_as_it_goes(store: Harness) -> None:
    keys = [f"d/{i}/obj" for i in range(30)]
    for key in keys:
        _put(store.storage, key, b"z")
    seen = []
    for info in store.storage.list_objects("d/"):
        seen.append(info.key)
        store.storage.delete(info.key)
    assert sorted(seen) == sorted(keys)
    assert list(store.storage.keys()) == []


def test_unfinished_write_is_an_incomplete_write(store: Harness) -> None:
    writer = store.storage.open_writer("pending/obj")
    writer.write(_payload(PART + 10))
    now = _utcnow()
    assert list(store.storage.incomplete_writes(now - timedelta(minutes=1))) == []
    [found] = list(store.storage.incomplete_writes(now + timedelta(minutes=1)))
    assert found.key in ("pending/obj", None)  # the local backend cannot tell the key
    assert found.name == (found.key or found.ref)
    assert 0 < found.size <= PART + 10
    assert now - timedelta(minutes=1) < found.modified <= now + CLOCK_SLACK
    store.storage.discard_incomplete(found)
    assert list(store.storage.incomplete_writes(now + timedelta(minutes=1))) == []
    assert store.leftovers() == []
    with pytest.raises(StorageError):
        writer.publish()
    _absent(store.storage, "pending/obj")
    writer.abort()
    store.storage.discard_incomplete(found)  # already gone: not an error


def test_finished_writes_are_not_incomplete(store: Harness) -> None:
    published = store.storage.open_writer("done")
    published.write(_payload(PART + 10))
    published.publish()
    aborted = store.storage.open_writer("aborted")
    aborted.write(_payload(PART + 10))
    aborted.abort()
    later = _utcnow() + timedelta(minutes=1)
    assert list(store.storage.incomplete_writes(later)) == []
    assert list(store.storage.keys()) == ["done"]


def test_discarding_one_incomplete_write_leaves_the_others(store: Harness) -> None:
    first = store.storage.open_writer("w/1")
    first.write(_payload(PART + 1, seed=1))
    second = store.storage.open_writer("w/2")
    second.write(_payload(PART + 2, seed=2))
    later = _utcnow() + timedelta(minutes=1)
    found = list(store.storage.incomplete_writes(later))
    assert len(found) == 2
    store.storage.discard_incomplete(found[0])
    assert [w.ref for w in store.storage.incomplete_writes(later)] == [found[1].ref]
    published = []
    for key, writer in (("w/1", first), ("w/2", second)):
        try:
            writer.publish()
            published.append(key)
        except StorageError:
            writer.abort()
    assert len(published) == 1
    if found[0].key is not None:  # backends that know each write's key
        assert {w.key for w in found} == {"w/1", "w/2"}
        assert published == [found[1].key]
    assert list(store.storage.keys("w/")) == published
    assert store.leftovers() == []
