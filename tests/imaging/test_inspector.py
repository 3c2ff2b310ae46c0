"""Detection and virtual size of well-formed images built with qemu-img."""

from __future__ import annotations

import io
import os
import pickle
import struct
import threading
from pathlib import Path

import pytest
from inspector_helpers import (
    NonSeekable,
    QemuImg,
    gpt_disk_bytes,
    iso_bytes,
    mbr_disk_bytes,
    qemu_virtual_size,
    run_qemu_img,
    stream_inspect,
)

from hostimage.imaging.inspector import (
    ErrorCode,
    FormatError,
    ImageInfo,
    StreamInspector,
    TruncatedError,
    UnsafeImageError,
    detect,
    inspect,
)

# (name, qemu-img create format, create options, our format name, qemu format name)
VALID_IMAGES = [
    ("qcow2-v3", "qcow2", (), "qcow2", "qcow2"),
    ("qcow2-v2", "qcow2", ("-o", "compat=0.10"), "qcow2", "qcow2"),
    ("qcow2-2m-clusters", "qcow2", ("-o", "cluster_size=2M"), "qcow2", "qcow2"),
    ("qcow2-zstd", "qcow2", ("-o", "compression_type=zstd"), "qcow2", "qcow2"),
    ("vmdk-sparse", "vmdk", (), "vmdk", "vmdk"),
    ("vmdk-sparse-v3", "vmdk", ("-o", "compat6=on"), "vmdk", "vmdk"),
    ("vmdk-stream", "vmdk", ("-o", "subformat=streamOptimized"), "vmdk", "vmdk"),
    ("vhd-dynamic", "vpc", (), "vhd", "vpc"),
    ("vhd-fixed", "vpc", ("-o", "subformat=fixed"), "vhd", "vpc"),
    ("vhd-force-size", "vpc", ("-o", "force_size=on"), "vhd", "vpc"),
    ("vhdx", "vhdx", (), "vhdx", "vhdx"),
    ("vhdx-1m-blocks", "vhdx", ("-o", "block_size=1M,log_size=1M"), "vhdx", "vhdx"),
    ("vhdx-fixed", "vhdx", ("-o", "subformat=fixed"), "vhdx", "vhdx"),
    ("raw", "raw", (), "raw", "raw"),
]


@pytest.mark.parametrize(
    ("name", "qemu_fmt", "options", "fmt", "info_fmt"),
    VALID_IMAGES,
    ids=[case[0] for case in VALID_IMAGES],
)
def test_detects_format_and_virtual_size(
    make_image: QemuImg,
    name: str,
    qemu_fmt: str,
    options: tuple[str, ...],
    fmt: str,
    info_fmt: str,
) -> None:
    path = make_image(f"{name}.img", qemu_fmt, "10M", *options)

    info = inspect(path, fmt)

    assert info.format == fmt
    assert info.virtual_size == qemu_virtual_size(path, info_fmt)
    assert inspect(path).format == fmt


def test_converted_images_match_qemu(tmp_path: Path) -> None:
    source = tmp_path / "source.raw"
    source.write_bytes(mbr_disk_bytes(3 << 20) + b"payload" * 1000)
    for fmt, options in [
        ("qcow2", ()),
        ("vmdk", ("-o", "subformat=streamOptimized")),
        ("vmdk", ("-o", "subformat=monolithicSparse")),
        ("vpc", ()),
        ("vhdx", ()),
    ]:
        target = tmp_path / f"converted-{fmt}-{len(options)}"
        run_qemu_img("convert", "-O", fmt, *options, source, target)
        info = inspect(target)
        assert info.virtual_size == qemu_virtual_size(target, fmt), fmt


def test_qcow2_details(make_image: QemuImg) -> None:
    info = inspect(make_image("a.qcow2", "qcow2", "1G", "-o", "cluster_size=128K"))
    assert info.virtual_size == 1 << 30
    assert info.details["version"] == 3
    assert info.details["cluster_size"] == 128 * 1024
    assert info.details["compression_type"] == "zlib"


def test_vmdk_details(make_image: QemuImg) -> None:
    sparse = inspect(make_image("s.vmdk", "vmdk", "20M"))
    stream = inspect(make_image("o.vmdk", "vmdk", "20M", "-o", "subformat=streamOptimized"))
    assert sparse.details["create_type"] == "monolithicSparse"
    assert stream.details["create_type"] == "streamOptimized"
    assert stream.details["compressed"] is True


def add_stream_footer(data: bytes, capacity: int) -> bytes:
    """Move a streamOptimized VMDK's header to a footer, as VMware's writers do."""
    header = bytearray(data[:512])
    footer_header = bytearray(header)
    struct.pack_into("<Q", footer_header, 12, capacity)
    struct.pack_into("<Q", header, 56, 0xFFFFFFFFFFFFFFFF)
    marker = struct.pack("<QII", 1, 0, 3).ljust(512, b"\0")
    return bytes(header) + data[512:] + marker + bytes(footer_header) + bytes(512)


def test_vmdk_footer_takes_precedence(make_image: QemuImg) -> None:
    path = make_image("o.vmdk", "vmdk", "10M", "-o", "subformat=streamOptimized")
    path.write_bytes(add_stream_footer(path.read_bytes(), capacity=40960))

    info = inspect(path, "vmdk")

    assert info.virtual_size == 40960 * 512 == qemu_virtual_size(path, "vmdk")
    assert info.details["footer"] is True
    assert stream_inspect(path.read_bytes(), 65536) == info


def test_vmdk_malformed_footer_is_refused(make_image: QemuImg) -> None:
    path = make_image("o.vmdk", "vmdk", "10M", "-o", "subformat=streamOptimized")
    data = add_stream_footer(path.read_bytes(), capacity=40960)
    path.write_bytes(data[:-1024] + b"KDMX" + data[-1020:])
    with pytest.raises(UnsafeImageError) as caught:
        inspect(path)
    assert caught.value.code == ErrorCode.INVALID_HEADER


def test_vhd_alias_vpc_is_accepted(make_image: QemuImg) -> None:
    path = make_image("a.vhd", "vpc")
    assert inspect(path, "vpc").format == "vhd"
    assert inspect(path, " VHD ").format == "vhd"


@pytest.mark.parametrize(
    ("builder", "table"),
    [(gpt_disk_bytes, "gpt"), (mbr_disk_bytes, "mbr"), (lambda: bytes(4096), None)],
    ids=["gpt", "mbr", "blank"],
)
def test_partitioned_disks_are_raw(tmp_path: Path, builder: object, table: str | None) -> None:
    path = tmp_path / "disk.raw"
    data = builder()  # type: ignore[operator]
    path.write_bytes(data)

    info = inspect(path, "raw")

    assert info == ImageInfo("raw", len(data), {"partition_table": table})


def test_iso_is_detected_and_may_be_declared_raw(tmp_path: Path) -> None:
    path = tmp_path / "cd.iso"
    path.write_bytes(iso_bytes())

    info = inspect(path, "iso")

    assert info.format == "iso"
    assert info.virtual_size == path.stat().st_size
    assert info.details["volume_id"] == "HOSTIMAGE_TEST"
    assert inspect(path, "raw").format == "iso"


def test_small_and_empty_files_are_raw(tmp_path: Path) -> None:
    for size in (0, 1, 511, 513):
        path = tmp_path / f"{size}.raw"
        path.write_bytes(b"\x01" * size)
        assert inspect(path) == ImageInfo("raw", size, {"partition_table": None})


def test_unknown_declared_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.raw"
    path.write_bytes(bytes(1024))
    with pytest.raises(UnsafeImageError) as caught:
        inspect(path, "ploop")
    assert caught.value.code == ErrorCode.UNSUPPORTED_FORMAT


def test_detect_with_read_at(make_image: QemuImg) -> None:
    data = make_image("a.qcow2", "qcow2", "5M").read_bytes()
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return data[offset : offset + length]

    info = detect(read_at, len(data))

    assert info.format == "qcow2"
    assert info.virtual_size == 5 << 20
    assert sum(length for _, length in reads) <= 2 << 20


def test_seekable_fileobj_position_is_restored(make_image: QemuImg) -> None:
    handle = io.BytesIO(make_image("a.vhdx", "vhdx").read_bytes())
    handle.seek(123)
    assert inspect(handle, "vhdx").format == "vhdx"
    assert handle.tell() == 123


def test_non_seekable_fileobj_is_streamed(make_image: QemuImg) -> None:
    data = make_image("a.vhdx", "vhdx").read_bytes()
    reader = io.BufferedReader(NonSeekable(data))
    assert not reader.seekable()
    assert inspect(reader, "vhdx") == inspect(io.BytesIO(data), "vhdx")


@pytest.mark.parametrize(
    ("name", "qemu_fmt", "options", "fmt", "info_fmt"),
    VALID_IMAGES,
    ids=[case[0] for case in VALID_IMAGES],
)
def test_streaming_agrees_with_file_inspection(
    make_image: QemuImg,
    name: str,
    qemu_fmt: str,
    options: tuple[str, ...],
    fmt: str,
    info_fmt: str,
) -> None:
    path = make_image(f"{name}.img", qemu_fmt, "10M", *options)
    data = path.read_bytes()
    expected = inspect(path)
    for chunk_size in (4096, 65536 + 17, 1 << 20, len(data) or 1):
        assert stream_inspect(data, chunk_size) == expected, chunk_size


def test_fifo_path_is_streamed(make_image: QemuImg, tmp_path: Path) -> None:
    data = make_image("a.qcow2", "qcow2").read_bytes()
    fifo = tmp_path / "upload.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("wb") as handle:
            handle.write(data)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert inspect(fifo, "qcow2").virtual_size == 10 << 20
    finally:
        writer.join(timeout=10)


def test_errors_survive_pickling() -> None:
    for error in (
        UnsafeImageError(ErrorCode.DATA_FILE, "The image uses an external data file."),
        TruncatedError("The image ends before its header is complete."),
    ):
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is type(error)
        assert (clone.code, str(clone)) == (error.code, str(error))
        assert isinstance(clone, FormatError)


def test_stream_inspector_reports_progress_and_bounds_memory(make_image: QemuImg) -> None:
    data = make_image("a.vhdx", "vhdx", "64M").read_bytes()
    inspector = StreamInspector()
    for start in range(0, len(data), 1 << 20):
        inspector.feed(data[start : start + (1 << 20)])
        assert inspector.retained_bytes <= 3 << 20
    assert inspector.bytes_seen == len(data)
    assert inspector.finish("vhdx").virtual_size == 64 << 20


def test_stream_inspector_rejects_early_and_keeps_failing(make_image: QemuImg) -> None:
    base = make_image("base.qcow2", "qcow2")
    overlay = make_image("overlay.qcow2", "qcow2", "10M", "-b", str(base), "-F", "qcow2")
    data = overlay.read_bytes() + bytes(2 << 20)
    inspector = StreamInspector()
    with pytest.raises(UnsafeImageError) as caught:
        for start in range(0, len(data), 1 << 20):
            inspector.feed(data[start : start + (1 << 20)])
    assert caught.value.code == ErrorCode.BACKING_FILE
    assert inspector.bytes_seen < len(data)
    with pytest.raises(UnsafeImageError):
        inspector.feed(b"more")
    with pytest.raises(UnsafeImageError):
        inspector.finish()


def test_stream_inspector_rejects_feed_after_finish() -> None:
    inspector = StreamInspector()
    inspector.feed(b"abc")
    assert inspector.finish() == ImageInfo("raw", 3, {"partition_table": None})
    with pytest.raises(RuntimeError):
        inspector.feed(b"more")
