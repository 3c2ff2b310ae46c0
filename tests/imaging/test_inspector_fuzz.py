"""Property tests: the inspector only ever raises FormatError, and memory stays bounded."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspector_helpers import outcome, run_qemu_img, stream_inspect

from hostimage.imaging.inspector import (
    ErrorCode,
    ImageInfo,
    StreamInspector,
    UnsafeImageError,
    detect,
    inspect,
)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MIB = 1 << 20

# Prefixes that steer random bytes into each parser.
PREFIXES = [
    b"",
    b"QFI\xfb\x00\x00\x00\x02",
    b"QFI\xfb\x00\x00\x00\x03",
    b"KDMV\x01\x00\x00\x00",
    b"KDMV\x03\x00\x00\x00",
    b"COWD",
    b"conectix",
    b"vhdxfile",
    b"# Disk DescriptorFile\n",
    b"version=1\n",
    b"QED\x00",
]


def detect_bytes(data: bytes) -> ImageInfo:
    return detect(lambda offset, length: data[offset : offset + length], len(data))


def assert_same_outcome(data: bytes, chunk_size: int) -> None:
    """File-mode and streaming inspection must agree on every input."""
    expected = outcome(lambda: detect_bytes(data))
    assert outcome(lambda: stream_inspect(data, chunk_size)) == expected


@FUZZ
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=4096))
def test_arbitrary_bytes_raise_only_format_errors(prefix: bytes, body: bytes) -> None:
    # outcome() lets FormatError through as a value and anything else propagate.
    assert_same_outcome(prefix + body, 997)


@FUZZ
@given(words=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40))
def test_structured_qcow2_headers(words: list[int]) -> None:
    data = b"QFI\xfb" + b"".join(struct.pack(">Q", w) for w in words)
    assert_same_outcome(data, 64)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Small valid images of each format, built once per module."""
    directory = tmp_path_factory.mktemp("samples")
    specs = {
        "qcow2": ("qcow2", ()),
        "qcow2-v2": ("qcow2", ("-o", "compat=0.10")),
        "vmdk": ("vmdk", ()),
        "vmdk-stream": ("vmdk", ("-o", "subformat=streamOptimized")),
        "vhd": ("vpc", ()),
        "vhd-fixed": ("vpc", ("-o", "subformat=fixed")),
        "vhdx": ("vhdx", ()),
    }
    images: dict[str, bytes] = {}
    for name, (fmt, options) in specs.items():
        path = directory / name
        run_qemu_img("create", "-q", "-f", fmt, *options, path, "1M")
        images[name] = path.read_bytes()
    return images


# Byte windows worth mutating in each sample: headers, tables, descriptors, footers.
WINDOWS = {
    "qcow2": [(0, 256)],
    "qcow2-v2": [(0, 256)],
    "vmdk": [(0, 128), (512, 1024)],
    "vmdk-stream": [(0, 128), (512, 1024)],
    "vhd": [(0, 96), (512, 560)],
    "vhd-fixed": [(-512, -416)],
    "vhdx": [
        (0, 16),
        (64 << 10, (64 << 10) + 96),
        (192 << 10, (192 << 10) + 96),
        (3 << 20, (3 << 20) + 224),
        ((3 << 20) + (64 << 10), (3 << 20) + (64 << 10) + 48),
    ],
}


@FUZZ
@given(data=st.data())
def test_mutated_valid_images(samples: dict[str, bytes], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(WINDOWS)), label="image")
    image = bytearray(samples[name])
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        start, end = data.draw(st.sampled_from(WINDOWS[name]), label="window")
        offset = data.draw(st.integers(start, end - 1), label="offset") % len(image)
        image[offset] = data.draw(st.integers(0, 255), label="byte")
    if data.draw(st.booleans(), label="truncate"):
        del image[data.draw(st.integers(0, len(image)), label="length") :]
    chunk = data.draw(st.sampled_from([4096, 65536 + 3, MIB]), label="chunk")
    assert_same_outcome(bytes(image), chunk)


def test_hostile_vmdk_descriptor_is_inspected_quickly(samples: dict[str, bytes]) -> None:
    image = bytearray(samples["vmdk"])
    struct.pack_into("<Q", image, 36, 2047)
    image[512:] = b"\n" * (2047 * 512) + b"RW 1 SPARSE " * 4096
    started = time.perf_counter()
    with pytest.raises(UnsafeImageError) as caught:
        detect_bytes(bytes(image))
    assert caught.value.code == ErrorCode.VMDK_CREATE_TYPE
    assert time.perf_counter() - started < 2


def _peak_while_streaming(header: bytes, total: int, chunk: bytes) -> tuple[int, ImageInfo]:
    inspector = StreamInspector()
    tracemalloc.start()
    try:
        inspector.feed(header)
        fed = len(header)
        while fed < total:
            inspector.feed(chunk)
            fed += len(chunk)
        info = inspector.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, info


@pytest.mark.parametrize("kind", ["raw", "qcow2", "vhdx"])
def test_streaming_memory_is_bounded(samples: dict[str, bytes], kind: str) -> None:
    chunk = bytes(MIB)
    header = {"raw": b"", "qcow2": samples["qcow2"], "vhdx": samples["vhdx"]}[kind]
    total = 64 * MIB

    peak, info = _peak_while_streaming(header, total, chunk)

    assert info.format == kind
    assert peak < 4 * MIB, f"peak traced memory {peak} bytes"


def test_streaming_many_tiny_chunks_is_bounded() -> None:
    inspector = StreamInspector()
    piece = b"\x42" * 100
    for _ in range(30000):
        inspector.feed(piece)
    assert inspector.retained_bytes <= MIB + 8192
    assert inspector.finish().virtual_size == 3_000_000


def test_file_inspection_memory_is_bounded(tmp_path: Path) -> None:
    big = tmp_path / "sparse.raw"
    with big.open("wb") as handle:
        handle.truncate(256 * MIB)
    tracemalloc.start()
    try:
        info = inspect(big, "raw")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.virtual_size == 256 * MIB
    assert peak < 2 * MIB
