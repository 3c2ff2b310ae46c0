"""A corpus of hostile or mislabelled images, each refused with a specific error code.

Every image is built at test time with qemu-img (then patched where qemu-img will
not produce the hostile variant itself) and checked through the file, seekable
and streaming entry points by ``assert_refused``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from inspector_helpers import QemuImg, assert_refused, iso_bytes, run_qemu_img

from hostimage.imaging.inspector import ErrorCode
from hostimage.imaging.inspector.crc32c import crc32c


def patch(path: Path, offset: int, new: bytes) -> Path:
    """Overwrite bytes of ``path`` in place and return it."""
    data = bytearray(path.read_bytes())
    data[offset : offset + len(new)] = new
    path.write_bytes(bytes(data))
    return path


def edit_descriptor(path: Path, old: bytes, new: bytes) -> Path:
    """Replace ``old`` by ``new`` in the descriptor embedded in a sparse VMDK."""
    data = bytearray(path.read_bytes())
    start = 512
    end = data.index(b"\0", start)
    text = bytes(data[start:end])
    assert old in text
    text = text.replace(old, new, 1)
    data[start : start + len(text)] = text
    data[start + len(text) : end] = bytes(max(0, end - start - len(text)))
    path.write_bytes(bytes(data))
    return path


def write_descriptor(path: Path, create_type: str, extent: str) -> Path:
    path.write_text(
        "# Disk DescriptorFile\n"
        "version=1\n"
        "CID=fffffffe\n"
        "parentCID=ffffffff\n"
        f'createType="{create_type}"\n\n'
        "# Extent description\n"
        f"{extent}\n"
    )
    return path


# --- qcow2 -------------------------------------------------------------------


def test_qcow2_backing_file(make_image: QemuImg) -> None:
    base = make_image("base.raw", "raw")
    overlay = make_image("overlay.qcow2", "qcow2", "10M", "-b", str(base), "-F", "raw")
    error = assert_refused(overlay, ErrorCode.BACKING_FILE, "qcow2")
    assert "base.raw" in str(error)


def test_qcow2_backing_format_extension_alone(make_image: QemuImg) -> None:
    base = make_image("base.qcow2", "qcow2")
    overlay = make_image("overlay.qcow2", "qcow2", "10M", "-b", str(base), "-F", "qcow2")
    # Clear the backing file pointer but keep the backing-format extension.
    patch(overlay, 8, bytes(12))
    assert_refused(overlay, ErrorCode.BACKING_FILE)


def test_qcow2_external_data_file(make_image: QemuImg, tmp_path: Path) -> None:
    image = make_image("data.qcow2", "qcow2", "10M", "-o", f"data_file={tmp_path / 'ext.raw'}")
    assert_refused(image, ErrorCode.DATA_FILE, "qcow2")


def test_qcow2_data_file_extension_without_feature_bit(make_image: QemuImg, tmp_path: Path) -> None:
    image = make_image("data.qcow2", "qcow2", "10M", "-o", f"data_file={tmp_path / 'ext.raw'}")
    patch(image, 72, struct.pack(">Q", 0))
    assert_refused(image, ErrorCode.DATA_FILE)


def test_qcow2_data_file_declared_raw(make_image: QemuImg, tmp_path: Path) -> None:
    # The CVE-2024-32498 shape: a qcow2 with a data file uploaded as "raw". qemu-img create
    # truncates the data file it names, so it must be a scratch file, never a host file.
    data_file = tmp_path / "victim.raw"
    image = make_image("data.img", "qcow2", "10M", "-o", f"data_file={data_file},data_file_raw=on")
    assert_refused(image, ErrorCode.DATA_FILE, "raw")


def test_qcow2_unknown_incompatible_feature(make_image: QemuImg) -> None:
    image = patch(make_image("a.qcow2", "qcow2"), 72, struct.pack(">Q", 1 << 5))
    error = assert_refused(image, ErrorCode.UNKNOWN_INCOMPATIBLE_FEATURES)
    assert "0x20" in str(error)


def test_qcow2_encrypted(make_image: QemuImg) -> None:
    image = make_image(
        "enc.qcow2",
        "qcow2",
        "10M",
        "--object",
        "secret,id=sec0,data=hunter2",
        "-o",
        "encrypt.format=aes,encrypt.key-secret=sec0",
    )
    assert_refused(image, ErrorCode.UNSUPPORTED_FEATURE)


@pytest.mark.parametrize("length", [4, 50, 90])
def test_qcow2_truncated_header(make_image: QemuImg, length: int) -> None:
    image = make_image("a.qcow2", "qcow2")
    image.write_bytes(image.read_bytes()[:length])
    assert_refused(image, ErrorCode.TRUNCATED_HEADER)


def test_qcow2_truncated_inside_extensions(make_image: QemuImg) -> None:
    image = make_image("a.qcow2", "qcow2")
    image.write_bytes(image.read_bytes()[:0x78])
    assert_refused(image, ErrorCode.TRUNCATED_HEADER)


def test_qcow2_huge_header_length(make_image: QemuImg) -> None:
    image = patch(make_image("a.qcow2", "qcow2"), 100, struct.pack(">I", 0xFFFFFFF0))
    assert_refused(image, ErrorCode.OVERSIZED_HEADER)


def test_qcow2_extension_longer_than_cluster(make_image: QemuImg) -> None:
    # Replace the feature-table extension header with one claiming 16 MiB.
    image = patch(make_image("a.qcow2", "qcow2"), 0x70, struct.pack(">II", 0x12345678, 1 << 24))
    assert_refused(image, ErrorCode.OVERSIZED_HEADER)


def test_qcow_version_1(make_image: QemuImg) -> None:
    image = patch(make_image("a.qcow2", "qcow2"), 4, struct.pack(">I", 1))
    assert_refused(image, ErrorCode.UNSUPPORTED_VERSION)


# --- vmdk --------------------------------------------------------------------


@pytest.mark.parametrize("subformat", ["monolithicFlat", "twoGbMaxExtentSparse"])
def test_vmdk_multi_file_subformats(chdir_tmp: Path, subformat: str) -> None:
    run_qemu_img("create", "-q", "-f", "vmdk", "-o", f"subformat={subformat}", "d.vmdk", "10M")
    assert_refused(chdir_tmp / "d.vmdk", ErrorCode.VMDK_CREATE_TYPE, "vmdk")


@pytest.mark.parametrize(
    ("create_type", "extent"),
    [
        ("vmfs", 'RW 20480 VMFS "/etc/passwd"'),
        ("monolithicFlat", 'RW 8 FLAT "/etc/passwd" 0'),
        ("monolithicSparse", 'RW 8 SPARSE "/etc/shadow"'),
    ],
    ids=["vmfs", "flat-passwd", "text-claiming-sparse"],
)
def test_vmdk_text_descriptor(tmp_path: Path, create_type: str, extent: str) -> None:
    descriptor = write_descriptor(tmp_path / "d.vmdk", create_type, extent)
    assert_refused(descriptor, ErrorCode.VMDK_CREATE_TYPE, "vmdk")
    # Labelled raw, it would still be probed as VMDK by qemu.
    assert_refused(descriptor, ErrorCode.VMDK_CREATE_TYPE, "raw")


def test_vmdk_sparse_with_flat_create_type(make_image: QemuImg) -> None:
    image = edit_descriptor(
        make_image("a.vmdk", "vmdk"), b'"monolithicSparse"', b'"monolithicFlat"'
    )
    assert_refused(image, ErrorCode.VMDK_CREATE_TYPE)


def test_vmdk_sparse_extent_pointing_at_host_file(make_image: QemuImg) -> None:
    image = make_image("a.vmdk", "vmdk")
    edit_descriptor(image, b'SPARSE "a.vmdk"', b'FLAT "/etc/passwd" 0')
    assert_refused(image, ErrorCode.VMDK_EXTENT)


def test_vmdk_parent_file_name_hint(make_image: QemuImg) -> None:
    image = make_image("a.vmdk", "vmdk")
    edit_descriptor(image, b"# The Disk Data Base", b'parentFileNameHint="/etc/passwd"')
    assert_refused(image, ErrorCode.BACKING_FILE)


def test_vmdk_zero_capacity_means_descriptor_file(make_image: QemuImg) -> None:
    image = patch(make_image("a.vmdk", "vmdk"), 12, struct.pack("<Q", 0))
    assert_refused(image, ErrorCode.VMDK_CREATE_TYPE)


def test_vmdk_descriptor_moved(make_image: QemuImg) -> None:
    image = patch(make_image("a.vmdk", "vmdk"), 28, struct.pack("<Q", 64))
    assert_refused(image, ErrorCode.VMDK_DESCRIPTOR)


def test_vmdk_descriptor_too_large(make_image: QemuImg) -> None:
    image = patch(make_image("a.vmdk", "vmdk"), 36, struct.pack("<Q", 1 << 40))
    assert_refused(image, ErrorCode.OVERSIZED_HEADER)


def test_vmdk_vmfs_sparse_cowd(make_image: QemuImg) -> None:
    image = patch(make_image("a.vmdk", "vmdk"), 0, b"COWD")
    assert_refused(image, ErrorCode.VMDK_CREATE_TYPE)


def test_vmdk_truncated_header(make_image: QemuImg) -> None:
    image = make_image("a.vmdk", "vmdk")
    image.write_bytes(image.read_bytes()[:300])
    assert_refused(image, ErrorCode.TRUNCATED_HEADER)


# --- vhd / vhdx ----------------------------------------------------------------


def _vhd_with_type(path: Path, disk_type: int) -> Path:
    data = bytearray(path.read_bytes())
    struct.pack_into(">I", data, 60, disk_type)
    struct.pack_into(">I", data, 64, 0)
    struct.pack_into(">I", data, 64, ~sum(data[:512]) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_vhd_truncated(make_image: QemuImg) -> None:
    image = make_image("a.vhd", "vpc")
    image.write_bytes(image.read_bytes()[:700])
    assert_refused(image, ErrorCode.TRUNCATED_HEADER, "vhd")


def test_vhd_bat_past_end_of_file(make_image: QemuImg) -> None:
    image = make_image("a.vhd", "vpc", "100M")
    image.write_bytes(image.read_bytes()[:1600])
    assert_refused(image, ErrorCode.TRUNCATED_HEADER)


def test_vhd_differencing_disk(make_image: QemuImg) -> None:
    image = _vhd_with_type(make_image("a.vhd", "vpc"), 4)
    assert_refused(image, ErrorCode.BACKING_FILE)


def test_vhd_bad_checksum(make_image: QemuImg) -> None:
    image = patch(make_image("a.vhd", "vpc"), 48, b"\xff")
    assert_refused(image, ErrorCode.INVALID_HEADER)


def _rewrite_region_table(path: Path, edit: bytes, at: int) -> Path:
    data = bytearray(path.read_bytes())
    table = 192 * 1024
    data[table + at : table + at + len(edit)] = edit
    struct.pack_into("<I", data, table + 4, 0)
    struct.pack_into("<I", data, table + 4, crc32c(bytes(data[table : table + 65536])))
    path.write_bytes(bytes(data))
    return path


def test_vhdx_corrupt_region_table(make_image: QemuImg) -> None:
    image = patch(make_image("a.vhdx", "vhdx"), 192 * 1024 + 40, b"\x13")
    error = assert_refused(image, ErrorCode.INVALID_HEADER)
    assert "region table" in str(error)


def test_vhdx_region_table_with_absurd_entry_count(make_image: QemuImg) -> None:
    image = _rewrite_region_table(make_image("a.vhdx", "vhdx"), struct.pack("<I", 50000), 8)
    assert_refused(image, ErrorCode.INVALID_HEADER)


def test_vhdx_region_past_end_of_file(make_image: QemuImg) -> None:
    # Move the metadata region (second entry) 1 TiB into the file.
    image = _rewrite_region_table(make_image("a.vhdx", "vhdx"), struct.pack("<Q", 1 << 40), 64)
    assert_refused(image, ErrorCode.TRUNCATED_HEADER)


def test_vhdx_unknown_required_region(make_image: QemuImg) -> None:
    entry = bytes(range(16)) + struct.pack("<QII", 5 << 20, 1 << 20, 1)
    image = _rewrite_region_table(make_image("a.vhdx", "vhdx"), struct.pack("<I", 3), 8)
    image = _rewrite_region_table(image, entry, 16 + 2 * 32)
    assert_refused(image, ErrorCode.UNSUPPORTED_FEATURE)


def test_vhdx_has_parent_flag(make_image: QemuImg) -> None:
    image = make_image("a.vhdx", "vhdx")
    # File parameters item: first metadata value, flags word after block size.
    patch(image, (3 << 20) + (64 << 10) + 4, struct.pack("<I", 2))
    assert_refused(image, ErrorCode.BACKING_FILE)


def test_vhdx_truncated(make_image: QemuImg) -> None:
    image = make_image("a.vhdx", "vhdx")
    image.write_bytes(image.read_bytes()[: 100 * 1024])
    assert_refused(image, ErrorCode.TRUNCATED_HEADER)


# --- other formats and declared-format mismatches ------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("qed", ()),
        ("vdi", ()),
        ("parallels", ()),
    ],
)
def test_foreign_formats_even_when_declared_raw(
    make_image: QemuImg, fmt: str, options: tuple[str, ...]
) -> None:
    image = make_image(f"a.{fmt}", fmt, "10M", *options)
    assert_refused(image, ErrorCode.UNSUPPORTED_FORMAT, "raw")


def test_luks_header_even_when_declared_raw(tmp_path: Path) -> None:
    # qemu-img takes seconds to create LUKS volumes (key derivation), so build the
    # header by hand: qemu probes LUKS by this magic and version alone.
    image = tmp_path / "volume.luks"
    image.write_bytes(b"LUKS\xba\xbe\x00\x01" + bytes(1 << 20))
    assert_refused(image, ErrorCode.UNSUPPORTED_FORMAT, "raw")


@pytest.mark.parametrize(
    ("qemu_fmt", "options", "declared"),
    [
        ("qcow2", (), "raw"),
        ("qcow2", (), "iso"),
        ("vmdk", (), "raw"),
        ("vmdk", ("-o", "subformat=streamOptimized"), "qcow2"),
        ("vpc", (), "raw"),
        ("vpc", ("-o", "subformat=fixed"), "raw"),
        ("vhdx", (), "vhd"),
        ("raw", (), "qcow2"),
        ("raw", (), "iso"),
        ("raw", (), "vmdk"),
    ],
)
def test_declared_format_mismatch(
    make_image: QemuImg, qemu_fmt: str, options: tuple[str, ...], declared: str
) -> None:
    image = make_image("image.bin", qemu_fmt, "10M", *options)
    assert_refused(image, ErrorCode.FORMAT_MISMATCH, declared)


def test_iso_declared_as_qcow2(tmp_path: Path) -> None:
    image = tmp_path / "cd.iso"
    image.write_bytes(iso_bytes())
    assert_refused(image, ErrorCode.FORMAT_MISMATCH, "qcow2")


def test_qcow2_disguised_as_iso(make_image: QemuImg) -> None:
    # A polyglot: qcow2 header at offset 0 and an ISO signature at 0x8001.
    image = make_image("poly.iso", "qcow2")
    patch(image, 0x8000, iso_bytes()[0x8000:0x8800])
    assert_refused(image, ErrorCode.FORMAT_MISMATCH, "iso")
