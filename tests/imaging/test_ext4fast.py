"""The appliance-free cleaning path for ext file systems gives the same result as the
libguestfs path (see test_guestfs.py), and steps aside for anything unusual."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from diskfactory import (
    NETWORK_FAMILIES,
    NETWORK_RESET,
    ODD_NAMES,
    PAYLOAD_PATH,
    RHEL_GLOBAL,
    TEMPLATE_FILES,
    DiskReader,
    assert_network_reset,
    build_data_disk,
    build_template_disk,
    missing_tool,
    network_files,
    open_filesystem,
    partition_table,
    payload_bytes,
    require_tools,
)

from hostimage.imaging import ext4fast, sandbox

SSH_HOST_KEYS = [
    "/etc/ssh/ssh_host_dsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_rsa_key.pub",
]


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    require_tools("mkfs.ext4", "sfdisk", "debugfs", "e2fsck", "bwrap")
    if not sandbox.available():
        missing_tool("bubblewrap cannot set up a sandbox on this host")


def ordinary_template(work: Path) -> Path:
    """The template disk without the file names no real VM has (a line break in a name)."""
    return build_template_disk(work, "disk", odd_names=False).path


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ext4fast.CleanReport]:
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
    rewritten = {p for p, content in NETWORK_RESET.items() if content is not None}
    gone = {p for p, content in NETWORK_RESET.items() if content is None}
    assert set(report.edited) == rewritten & set(network_files())
    assert gone <= set(report.removed)
    assert {c["path"] for c in report.network} == set(report.edited) | gone
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


def test_network_configs_are_reset(root: DiskReader) -> None:
    assert_network_reset(root, network_files())


@pytest.mark.parametrize("family", list(NETWORK_FAMILIES))
def test_a_template_of_each_family(tmp_path: Path, family: str) -> None:
    files = dict(NETWORK_FAMILIES[family])
    if family == "rhel":
        files.update(RHEL_GLOBAL)
    disk = build_template_disk(tmp_path, family, odd_names=False, network=files)
    report = ext4fast.clean_identity(disk.path)
    assert report is not None
    assert all(c["action"] in ("dhcp", "edited", "removed") for c in report.network)
    assert {c["path"] for c in report.network} == set(files) & set(NETWORK_RESET)
    with open_filesystem(disk.path, "raw", tmp_path, 2) as root:
        assert_network_reset(root, files)
    # A second clean finds nothing left to reset.
    again = ext4fast.clean_identity(disk.path)
    assert again is not None and again.network == ()


def test_links_and_oversized_configs_are_not_read(tmp_path: Path) -> None:
    files = dict(NETWORK_FAMILIES["ubuntu"])
    files["/etc/netplan/70-huge.yaml"] = (b"#" * (300 * 1024) + b"\n", 0o600)
    files["/srv/elsewhere.yaml"] = (
        b"network: {ethernets: {x: {addresses: [10.20.31.77/24]}}}\n",
        0o600,
    )
    disk = build_template_disk(
        tmp_path,
        "links",
        odd_names=False,
        network=files,
        symlinks={
            "/etc/netplan/60-link.yaml": "/srv/elsewhere.yaml",
            "/etc/sysconfig/network-scripts": "/srv",
        },
    )
    report = ext4fast.clean_identity(disk.path)
    assert report is not None
    skipped = {c["path"]: c["reason"] for c in report.network if c["action"] == "skipped"}
    assert set(skipped) == {
        "/etc/netplan/60-link.yaml",
        "/etc/netplan/70-huge.yaml",
        "/etc/sysconfig/network-scripts",
    }
    with open_filesystem(disk.path, "raw", tmp_path, 2) as root:
        assert root.stat("/etc/netplan/60-link.yaml").kind == "symlink"  # type: ignore[union-attr]
        assert root.read("/srv/elsewhere.yaml") == files["/srv/elsewhere.yaml"][0]
        assert root.read("/etc/netplan/70-huge.yaml") == files["/etc/netplan/70-huge.yaml"][0]
        assert (
            root.read("/etc/netplan/50-cloud-init.yaml")
            == NETWORK_RESET["/etc/netplan/50-cloud-init.yaml"]
        )


def test_without_a_sandbox_nothing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = ordinary_template(tmp_path)
    before = disk.read_bytes()
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))  # no bwrap; the e2fsprogs are still found in /sbin
    sandbox.available.cache_clear()
    try:
        assert ext4fast.clean_identity(disk) is None
    finally:
        sandbox.available.cache_clear()
    assert disk.read_bytes() == before


def test_a_line_break_in_a_name_is_left_to_libguestfs(tmp_path: Path) -> None:
    assert ODD_NAMES  # the shared template has one in /tmp
    disk = build_template_disk(tmp_path, "odd", fmt="raw")
    before = disk.path.read_bytes()
    assert ext4fast.clean_identity(disk.path) is None
    assert disk.path.read_bytes() == before
