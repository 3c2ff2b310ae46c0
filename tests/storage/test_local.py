"""What the local backend promises beyond the shared contract: real file ages for incomplete
writes, empty directories pruned, odd files left alone."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hostimage.storage.base import IncompleteWrite, StorageError
from hostimage.storage.local import LocalStorage

DAY = 24 * 3600


@pytest.fixture()
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "objects")


def _put(storage: LocalStorage, key: str, data: bytes = b"data") -> None:
    writer = storage.open_writer(key)
    writer.write(data)
    writer.publish()


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_incomplete_writes_go_by_the_files_real_age(local: LocalStorage) -> None:
    stale = local.open_writer("stale")
    stale.write(b"s" * (1 << 20))  # bigger than the buffer: reaches the file at once
    fresh = local.open_writer("fresh")
    fresh.write(b"f" * 1000)
    [stale_file] = [p for p in local.tmp_dir.iterdir() if p.stat().st_size > 0]
    _age(stale_file, 2 * DAY)
    cutoff = datetime.now(UTC) - timedelta(days=1)
    [found] = list(local.incomplete_writes(cutoff))
    assert found.ref == f".tmp/{stale_file.name}"
    assert found.key is None
    assert found.size == 1 << 20
    assert found.modified < cutoff - timedelta(hours=23)
    local.discard_incomplete(found)
    assert not stale_file.exists()
    fresh.publish()
    assert local.stat("fresh") is not None
    with pytest.raises(StorageError):
        stale.publish()
    assert local.stat("stale") is None


def test_a_write_that_resumed_after_listing_is_not_discarded(local: LocalStorage) -> None:
    writer = local.open_writer("slow")
    writer.write(b"a" * (1 << 20))
    [tmp] = list(local.tmp_dir.iterdir())
    _age(tmp, 2 * DAY)
    [found] = list(local.incomplete_writes(datetime.now(UTC) - timedelta(days=1)))
    writer.write(b"b" * (1 << 20))  # bigger than the buffer: reaches the file at once
    local.discard_incomplete(found)
    assert tmp.exists()
    writer.publish()
    assert local.stat("slow") is not None


def test_only_part_files_are_incomplete_writes(local: LocalStorage) -> None:
    other = local.tmp_dir / "notes.txt"
    other.write_text("not ours")
    _age(other, 2 * DAY)
    assert list(local.incomplete_writes(datetime.now(UTC))) == []
    for ref in ("notes.txt", ".tmp/notes.txt", ".tmp/../x.part", "../x.part"):
        with pytest.raises(StorageError):
            local.discard_incomplete(IncompleteWrite(ref, None, 0, datetime.now(UTC)))
    assert other.exists()


def test_delete_prunes_the_directories_it_empties(local: LocalStorage) -> None:
    _put(local, "images/a/1")
    _put(local, "images/a/2")
    _put(local, "images/b/1")
    local.delete("images/a/1")
    assert (local.root / "images/a").is_dir()
    local.delete("images/a/2")
    assert not (local.root / "images/a").exists()
    assert (local.root / "images/b").is_dir()
    local.delete("images/b/1")
    assert sorted(p.name for p in local.root.iterdir()) == [".tmp"]


def test_a_writer_whose_directory_was_pruned_still_publishes(local: LocalStorage) -> None:
    _put(local, "host-images/h/old")
    writer = local.open_writer("host-images/h/new")
    writer.write(b"new bytes")
    local.delete("host-images/h/old")
    assert not (local.root / "host-images").exists()
    writer.publish()
    assert b"".join(local.read("host-images/h/new")) == b"new bytes"


def test_listing_skips_what_is_not_an_object(local: LocalStorage) -> None:
    _put(local, "real/object")
    (local.root / "real" / "with space").write_text("x")
    (local.root / ".hidden").write_text("x")
    (local.root / "odd dir").mkdir()
    (local.root / "odd dir" / "file").write_text("x")
    (local.root / "link").symlink_to(local.root / "real" / "object")
    (local.tmp_dir / "junk.part").write_text("x")
    assert [i.key for i in local.list_objects()] == ["real/object"]
    assert local.stat("real") is None  # a directory is not an object


def test_a_refused_delete_is_a_storage_error(local: LocalStorage) -> None:
    _put(local, "locked/obj")
    path = local.root / "locked" / "obj"
    os.chmod(path.parent, 0o500)
    try:
        if os.geteuid() == 0:  # root ignores permissions: make the file immutable instead
            immutable(path)
        with pytest.raises(StorageError):
            local.delete("locked/obj")
        assert local.stat("locked/obj") is not None
    finally:
        mutable(path)
        os.chmod(path.parent, 0o700)


def immutable(path: Path) -> None:
    """Make ``path`` immutable (``chattr +i``): even root cannot unlink it. Needs e2fsprogs'
    chattr and a file system that has the attribute (ext4, xfs, btrfs)."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, f"chattr +i failed: {done.stderr}"


def mutable(path: Path) -> None:
    subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
