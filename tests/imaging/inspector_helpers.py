"""Helpers shared by the image inspector tests: qemu-img wrappers and image builders."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hostimage.imaging.inspector import FormatError, ImageInfo, StreamInspector, inspect

QEMU_IMG = shutil.which("qemu-img")

QemuImg = Callable[..., Path]


def run_qemu_img(*args: str | Path) -> None:
    """Run qemu-img, failing the test with its stderr if it fails."""
    if QEMU_IMG is None:
        pytest.skip("qemu-img is not installed")
    done = subprocess.run([QEMU_IMG, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"qemu-img {' '.join(map(str, args))} failed: {done.stderr}")


def qemu_virtual_size(path: Path, fmt: str) -> int:
    """Return the virtual size qemu-img reports for ``path`` opened as ``fmt``."""
    assert QEMU_IMG is not None
    out = subprocess.run(
        [QEMU_IMG, "info", "--output=json", "-f", fmt, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    size: int = json.loads(out)["virtual-size"]
    return size


def iso_bytes(volume_id: bytes = b"HOSTIMAGE_TEST", blocks: int = 40) -> bytes:
    """Build a minimal ISO 9660 image: a primary volume descriptor and a terminator."""
    data = bytearray(blocks * 2048)
    pvd = 0x8000
    data[pvd : pvd + 7] = b"\x01CD001\x01"
    data[pvd + 40 : pvd + 72] = volume_id.ljust(32)
    struct.pack_into("<I", data, pvd + 80, blocks)
    struct.pack_into(">I", data, pvd + 84, blocks)
    struct.pack_into("<H", data, pvd + 128, 2048)
    data[0x8800:0x8807] = b"\xffCD001\x01"
    return bytes(data)


def gpt_disk_bytes(size: int = 1 << 20) -> bytes:
    """Build a disk with a protective MBR and a GPT header signature."""
    data = bytearray(size)
    data[446 + 4] = 0xEE
    data[510:512] = b"\x55\xaa"
    data[512:520] = b"EFI PART"
    return bytes(data)


def mbr_disk_bytes(size: int = 1 << 20) -> bytes:
    """Build a disk with a classic MBR partition table."""
    data = bytearray(size)
    data[446 + 4] = 0x83
    data[510:512] = b"\x55\xaa"
    return bytes(data)


class NonSeekable(io.RawIOBase):
    """A read-only, non-seekable byte stream, like an HTTP request body."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data[self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def stream_inspect(data: bytes, chunk_size: int, declared: str | None = None) -> ImageInfo:
    """Feed ``data`` through a StreamInspector in ``chunk_size`` pieces."""
    inspector = StreamInspector()
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        inspector.feed(view[start : start + chunk_size])
    return inspector.finish(declared)


def outcome(run: Callable[[], ImageInfo]) -> tuple[str, object, object]:
    """Summarise an inspection as (kind, format-or-code, size) for comparisons."""
    try:
        info = run()
    except FormatError as exc:
        assert_sentence(str(exc))
        return ("error", exc.code, None)
    return ("ok", info.format, info.virtual_size)


def assert_refused(path: Path, code: str, declared: str | None = None) -> FormatError:
    """Assert every entry point refuses ``path`` with ``code``; return the file-mode error."""
    with pytest.raises(FormatError) as caught:
        inspect(path, declared)
    error = caught.value
    assert error.code == code, f"expected {code}, got {error.code}: {error}"
    assert_sentence(str(error))
    data = path.read_bytes()
    for chunk_size in (4096, 1 << 20):
        with pytest.raises(FormatError) as streamed:
            stream_inspect(data, chunk_size, declared)
        assert streamed.value.code == code, f"stream({chunk_size}) gave {streamed.value}"
    return error


def assert_sentence(message: str) -> None:
    """Assert ``message`` reads as a human sentence."""
    assert message[:1].isupper(), message
    assert message.endswith("."), message
    assert len(message.split()) >= 5, message
