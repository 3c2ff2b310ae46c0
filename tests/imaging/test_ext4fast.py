"""The appliance-free cleaning path for ext file systems gives the same result as the
libguestfs path (see test_guestfs.py), and steps aside for anything unusual."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from diskfactory import (
    PAYLOAD_PATH,
    TEMPLATE_FILES,
    DiskReader,
    build_data_disk,
    build_template_disk,
    make_ext4,
    make_partitioned_disk,
    open_filesystem,
    partition_table,
    payload_bytes,
    require_tools,
    write_template_tree,
)

from hostimage.imaging import ext4fast

SSH_HOST_KEYS = [
    "/etc/ssh/ssh_host_dsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_rsa_key.pub",
]


ODD_NAMES = [name for name in TEMPLATE_FILES if "\n" in name]


def ordinary_template(work: Path) -> Path:
    """The template disk without the file names no real VM has (a line break in a name)."""
    tree = write_template_tree(work / "tree")
    for name in ODD_NAMES:
        (tree / name.lstrip("/")).unlink()
    boot = make_ext4(work / "boot.ext4", 8 * 1024 * 1024)
    root = make_ext4(work / "root.ext4", 32 * 1024 * 1024, tree)
    return make_partitioned_disk(work / "disk.raw", [boot, root])


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ext4fast.CleanReport]:
    require_tools("mkfs.ext4", "sfdisk", "debugfs", "e2fsck")
    disk = ordinary_template(tmp_path_factory.mktemp("fast"))
    report = ext4fast.clean_identity(disk)
    assert report is not None
    return disk, report


@pytest.fixture(scope="module")
def root(
    cleaned: tuple[Path, ext4fast.CleanReport], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DiskReader]:
    with open_filesystem(cleaned[0], "raw", tmp_path_factory.mktemp("read"), 2) as reader:
        yield reader


def test_report(cleaned: tuple[Path, ext4fast.CleanReport]) -> None:
    report = cleaned[1]
    assert report.skipped_reason is None
    for path in [
        *SSH_HOST_KEYS,
        "/var/log/messages",
        "/var/log/app/x.log",
        "/tmp/junk",
        "/var/lib/dbus/machine-id",
        "/etc/udev/rules.d/70-persistent-net.rules",
    ]:
        assert path in report.removed
    assert report.emptied == ("/etc/machine-id",)
    assert report.edited == ("/etc/sysconfig/network-scripts/ifcfg-eth0",)
    assert "/var/log/app" not in report.removed


def test_identity_is_gone_and_data_kept(root: DiskReader) -> None:
    assert root.listdir("/etc/ssh") == ["sshd_config"]
    machine_id = root.stat("/etc/machine-id")
    assert machine_id is not None and (machine_id.size, machine_id.mode) == (0, 0o444)
    assert root.listdir("/var/log") == ["app", "apt", "journal"]
    assert root.is_empty_dir("/var/log/app")
    for directory in ("/var/lib/cloud", "/tmp", "/var/tmp"):
        assert root.is_empty_dir(directory)
    tmp = root.stat("/tmp")
    assert tmp is not None and tmp.mode == 0o1777
    assert root.listdir("/etc/udev/rules.d") == ["99-local.rules"]
    ifcfg = root.read("/etc/sysconfig/network-scripts/ifcfg-eth0")
    assert ifcfg == b"DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\n"
    for path in ("/etc/hostname", "/etc/hosts", "/etc/passwd", "/etc/shadow"):
        assert root.read(path) == TEMPLATE_FILES[path][0], path
    # the host key that was a symlink to user data was unlinked, the data is intact
    assert root.read(PAYLOAD_PATH) == payload_bytes()


def test_file_system_stays_consistent(cleaned: tuple[Path, ext4fast.CleanReport]) -> None:
    offset = partition_table(cleaned[0])[1][0]
    done = subprocess.run(
        ["e2fsck", "-fn", f"{cleaned[0]}?offset={offset}"], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stdout


def test_blank_and_data_disks_are_left_to_libguestfs(tmp_path: Path) -> None:
    blank = build_data_disk(tmp_path / "blank.raw", "blank", 4 * 1024 * 1024)
    data = build_data_disk(tmp_path / "data.raw", "ext4")
    assert ext4fast.clean_identity(blank) is None
    assert ext4fast.clean_identity(data) is None  # ext4, but no /etc: not a root file system


def test_journal_needing_recovery_is_left_to_libguestfs(tmp_path: Path) -> None:
    disk = build_template_disk(tmp_path, "dirty", fmt="raw")
    offset = partition_table(disk.path)[1][0]
    before = disk.path.read_bytes()
    with disk.path.open("r+b") as fh:
        fh.seek(offset + 1024 + 0x60)
        (features,) = struct.unpack("<I", fh.read(4))
        fh.seek(offset + 1024 + 0x60)
        fh.write(struct.pack("<I", features | ext4fast.NEEDS_RECOVERY))
    patched = disk.path.read_bytes()
    assert ext4fast.clean_identity(disk.path) is None
    assert disk.path.read_bytes() == patched != before  # nothing was changed


def test_a_line_break_in_a_name_is_left_to_libguestfs(tmp_path: Path) -> None:
    assert ODD_NAMES  # the shared template has one in /tmp
    disk = build_template_disk(tmp_path, "odd", fmt="raw")
    before = disk.path.read_bytes()
    assert ext4fast.clean_identity(disk.path) is None
    assert disk.path.read_bytes() == before
