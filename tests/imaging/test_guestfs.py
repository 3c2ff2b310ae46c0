"""Identity cleaning and deployment on real disk images, verified independently with debugfs.

Each appliance launch is slow (tens of seconds without KVM), so the file launches as few as
possible: one clean and three deploys (DHCP reset, static address, static address in a new
file) shared by many tests (once per run, even under xdist), plus one launch each for the
missing-user and blank-disk cases. The template carries every network family's static
config; the clean's result is compared with the sandboxed fast path's. Input validation is
tested without any launch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from diskfactory import (
    CLOUD_GID,
    CLOUD_UID,
    NETWORK_RESET,
    OLD_MACHINE_ID,
    PAYLOAD_PATH,
    TEMPLATE_FILES,
    TEMPLATE_HOSTNAME,
    DiskReader,
    assert_network_reset,
    build_data_disk,
    build_template_disk,
    network_files,
    once_per_run,
    open_filesystem,
    payload_bytes,
    require_tools,
    template_pins,
)

from hostimage.imaging import ext4fast, guestfish, guestfs
from hostimage.imaging.guestfs import GuestfsError, GuestfsLimits, IdentityError
from hostimage.imaging.netconfig import StaticNetwork
from hostimage.imaging.passwords import sha512_crypt

STATIC = StaticNetwork("192.0.2.10/24", gateway="192.0.2.1", dns=("192.0.2.53",))


@pytest.fixture(autouse=True)
def appliance_tools() -> None:
    require_tools("guestfish")


NEW_HOSTNAME = "web-01.example.com"
NEW_MACHINE_ID = "fedcba9876543210fedcba9876543210"
# A well-formed ed25519 public key (its 32 key bytes are 0..31): the identity rules decode it.
SSH_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f alice@laptop"
)
SSH_HOST_KEYS = [
    "/etc/ssh/ssh_host_dsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_rsa_key.pub",
]


def original(path: str) -> bytes:
    return TEMPLATE_FILES[path][0]


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A GPT qcow2 template disk after clean_identity, with the report (one launch per run)."""
    require_tools("mkfs.ext4", "sfdisk", "debugfs")

    def build(workdir: Path) -> dict[str, object]:
        disk = build_template_disk(workdir, "template", table="gpt", fmt="qcow2")
        report = guestfs.clean_identity(disk.path, disk.fmt)
        return {"disk": str(disk.path), "fmt": disk.fmt, "report": asdict(report)}

    return once_per_run(tmp_path_factory, "cleaned", build)[1]


@pytest.fixture(scope="module")
def cleaned_root(
    cleaned: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DiskReader]:
    workdir = tmp_path_factory.mktemp("cleaned-read")
    with open_filesystem(Path(cleaned["disk"]), cleaned["fmt"], workdir, 2) as reader:
        yield reader


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An MBR raw template disk after deploy_identity with a password and a key."""
    require_tools("mkfs.ext4", "sfdisk", "debugfs", "openssl")

    def build(workdir: Path) -> dict[str, object]:
        disk = build_template_disk(workdir, "template", table="dos", fmt="raw")
        password_hash = sha512_crypt("Correct-Horse-Battery-1")
        report = guestfs.deploy_identity(
            disk.path,
            disk.fmt,
            hostname=NEW_HOSTNAME,
            machine_id=NEW_MACHINE_ID,
            login_user="cloud",
            password_hash=password_hash,
            ssh_public_key=SSH_KEY + "\n",
        )
        return {"disk": str(disk.path), "hash": password_hash, "report": asdict(report)}

    return once_per_run(tmp_path_factory, "deployed", build)[1]


@pytest.fixture(scope="module")
def deployed_root(
    deployed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DiskReader]:
    workdir = tmp_path_factory.mktemp("deployed-read")
    with open_filesystem(Path(deployed["disk"]), "raw", workdir, 2) as reader:
        yield reader


@pytest.fixture(scope="module")
def deployed_static(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A qcow2 template disk (every network family) after deploy_identity with a static
    address, read back: every network config's content and inode."""
    require_tools("mkfs.ext4", "sfdisk", "debugfs")

    def build(workdir: Path) -> dict[str, object]:
        disk = build_template_disk(workdir, "template", fmt="qcow2")
        report = guestfs.deploy_identity(
            disk.path,
            disk.fmt,
            hostname="static-01",
            machine_id=NEW_MACHINE_ID,
            login_user="cloud",
            network=STATIC,
        )
        return {"report": asdict(report), "files": read_back(disk.path, disk.fmt, workdir)}

    return once_per_run(tmp_path_factory, "deployed-static", build)[1]


@pytest.fixture(scope="module")
def deployed_new_file(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A template with no network config but an /etc/netplan directory, after deploy_identity
    with a static address (the config must be created)."""
    require_tools("mkfs.ext4", "sfdisk", "debugfs")

    def build(workdir: Path) -> dict[str, object]:
        disk = build_template_disk(workdir, "bare", network={}, extra_dirs={"/etc/netplan": 0o755})
        report = guestfs.deploy_identity(
            disk.path,
            disk.fmt,
            hostname="bare-01",
            machine_id=NEW_MACHINE_ID,
            login_user="cloud",
            network=STATIC,
        )
        paths = ["/etc/netplan/60-hostimage.yaml"]
        return {"report": asdict(report), "files": read_back(disk.path, disk.fmt, workdir, paths)}

    return once_per_run(tmp_path_factory, "deployed-new-file", build)[1]


def read_back(
    disk: Path, fmt: str, workdir: Path, paths: list[str] | None = None
) -> dict[str, object]:
    """path → [content, mode, uid, gid] (None when absent) of the network configs."""
    out: dict[str, object] = {}
    wanted = paths or sorted({*network_files(), "/etc/sysconfig/network/ifroute-eth0"})
    with open_filesystem(disk, fmt, workdir, 2) as root:
        for path in wanted:
            info = root.stat(path)
            out[path] = None
            if info is not None:
                out[path] = [root.read(path).decode(), info.mode, info.uid, info.gid]
    return out


# clean_identity ---------------------------------------------------------------------------


def test_clean_report_records_what_was_cleaned(cleaned: dict[str, Any]) -> None:
    report = cleaned["report"]
    assert report["skipped_reason"] is None
    assert report["root_filesystem"] == "/dev/sda2"  # sda1 has no /etc and is passed over
    for path in [*SSH_HOST_KEYS, "/var/log/messages", "/var/log/app/x.log", "/tmp/junk"]:
        assert path in report["removed"]
    assert "/var/lib/dbus/machine-id" in report["removed"]
    assert "/etc/udev/rules.d/70-persistent-net.rules" in report["removed"]
    assert {"/var/lib/cloud/data", "/var/lib/cloud/instance", "/var/lib/cloud/instances"} <= set(
        report["removed"]
    )
    assert report["emptied"] == ["/etc/machine-id"]
    rewritten = {p for p, content in NETWORK_RESET.items() if content is not None}
    gone = {p for p, content in NETWORK_RESET.items() if content is None}
    assert set(report["edited"]) == rewritten & set(network_files())
    assert gone <= set(report["removed"])
    assert "/var/log/app" not in report["removed"]  # directories are kept


def test_ssh_host_keys_are_removed(cleaned_root: DiskReader) -> None:
    assert cleaned_root.listdir("/etc/ssh") == ["sshd_config"]
    assert cleaned_root.read("/etc/ssh/sshd_config") == original("/etc/ssh/sshd_config")


def test_machine_id_is_emptied_but_kept(cleaned_root: DiskReader) -> None:
    machine_id = cleaned_root.stat("/etc/machine-id")
    assert machine_id is not None
    assert (machine_id.kind, machine_id.size, machine_id.mode) == ("regular", 0, 0o444)
    assert not cleaned_root.exists("/var/lib/dbus/machine-id")
    assert cleaned_root.exists("/var/lib/dbus")


def test_log_files_are_removed_and_directories_kept(cleaned_root: DiskReader) -> None:
    assert cleaned_root.listdir("/var/log") == ["app", "apt", "journal"]
    for directory in ("/var/log/app", "/var/log/apt", "/var/log/journal"):
        assert cleaned_root.is_empty_dir(directory)


def test_cloud_init_state_is_removed(cleaned_root: DiskReader) -> None:
    assert cleaned_root.is_empty_dir("/var/lib/cloud")


def test_tmp_directories_are_emptied(cleaned_root: DiskReader) -> None:
    for directory in ("/tmp", "/var/tmp"):
        assert cleaned_root.is_empty_dir(directory)
        info = cleaned_root.stat(directory)
        assert info is not None and info.mode == 0o1777


def test_old_nic_bindings_are_reset(cleaned_root: DiskReader) -> None:
    assert cleaned_root.listdir("/etc/udev/rules.d") == ["99-local.rules"]
    assert_network_reset(cleaned_root, network_files())


def test_both_paths_reset_the_network_alike(
    cleaned: dict[str, Any], cleaned_root: DiskReader, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The sandboxed fast path, on the same template (without the names it leaves to
    libguestfs), reports the same network changes and leaves the same bytes, modes and
    owners."""
    require_tools("bwrap")
    work = tmp_path_factory.mktemp("fast")
    disk = build_template_disk(work, "template", table="gpt", odd_names=False)
    fast = ext4fast.clean_identity(disk.path)
    assert fast is not None, "the sandboxed fast path did not run"
    assert json.loads(json.dumps(fast.network)) == cleaned["report"]["network"]
    with open_filesystem(disk.path, "raw", work, 2) as fast_root:
        for path in sorted(network_files()):
            assert fast_root.stat(path) == cleaned_root.stat(path), path
            if fast_root.exists(path):
                assert fast_root.read(path) == cleaned_root.read(path), path


def test_hostname_accounts_and_user_data_are_untouched(cleaned_root: DiskReader) -> None:
    for path in (
        "/etc/hostname",
        "/etc/hosts",
        "/etc/passwd",
        "/etc/shadow",
        "/home/cloud/.bashrc",
    ):
        assert cleaned_root.read(path) == original(path), path
    # The host key that was a symlink to user data was unlinked; the data itself is intact.
    assert cleaned_root.read(PAYLOAD_PATH) == payload_bytes()
    shadow = cleaned_root.stat("/etc/shadow")
    assert shadow is not None and shadow.mode == 0o640


def test_other_partitions_are_untouched(
    cleaned: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("boot-read")
    with open_filesystem(Path(cleaned["disk"]), cleaned["fmt"], workdir, 1) as boot:
        assert boot.read("/vmlinuz-fake") == b"not a kernel\n"


def test_blank_disk_is_skipped(tmp_path: Path) -> None:
    disk = build_data_disk(tmp_path / "blank.raw", kind="blank", size=8 << 20)
    report = guestfs.clean_identity(disk, "raw")
    assert report.root_filesystem is None
    assert report.skipped_reason and "/etc" in report.skipped_reason
    assert (report.removed, report.emptied, report.edited) == ((), (), ())
    assert disk.read_bytes() == bytes(8 << 20)


def test_launch_timeout_leaves_no_process_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A KVM attempt that times out turns KVM off for the process: keep that to this test.
    monkeypatch.setattr(guestfish, "_kvm_broken", guestfish._kvm_broken)
    disk = build_data_disk(tmp_path / "slow.raw", kind="blank", size=8 << 20)
    with pytest.raises(GuestfsError, match=r"did not finish within 1\.0 seconds"):
        guestfs.clean_identity(disk, "raw", limits=GuestfsLimits(launch_timeout=1.0))
    # SIGKILL is asynchronous: give the killed appliance a moment to disappear.
    deadline = time.monotonic() + 10
    while processes_using(disk) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_using(disk) == []


def test_a_kvm_launch_that_does_not_finish_falls_back_to_tcg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On hosts where /dev/kvm is there but never starts an appliance, a KVM launch is given
    up after ``kvm_launch_timeout`` and retried with TCG. Here 0.5 s, too short for any
    launch, so the fallback is exercised whether or not KVM works on this host."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("no usable /dev/kvm on this host: launches use TCG directly")
    monkeypatch.delenv("LIBGUESTFS_BACKEND_SETTINGS", raising=False)
    monkeypatch.setattr(guestfish, "_kvm_broken", False)
    disk = build_data_disk(tmp_path / "kvm.raw", kind="blank", size=8 << 20)
    report = guestfs.clean_identity(disk, "raw", limits=GuestfsLimits(kvm_launch_timeout=0.5))
    assert report.root_filesystem is None and report.skipped_reason
    assert guestfish._kvm_broken is True
    deadline = time.monotonic() + 10
    while processes_using(disk) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_using(disk) == []


def processes_using(path: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


# deploy_identity --------------------------------------------------------------------------


def test_deploy_report(deployed: dict[str, Any]) -> None:
    report = deployed["report"]
    assert report["root_filesystem"] == "/dev/sda2"
    assert report["hostname"] == NEW_HOSTNAME
    assert report["password_set"] and report["ssh_key_added"]
    assert report["skipped_reason"] is None
    rewritten = {p for p, content in NETWORK_RESET.items() if content is not None}
    assert set(report["written"]) == {
        "/etc/hostname",
        "/etc/hosts",
        "/etc/machine-id",
        "/etc/shadow",
        "/home/cloud/.ssh/authorized_keys",
    } | (rewritten & set(network_files()))
    assert {c["action"] for c in report["network"]} == {"dhcp", "edited", "removed"}


def test_deploy_without_an_address_resets_the_network(deployed_root: DiskReader) -> None:
    assert_network_reset(deployed_root, network_files())


def test_deploy_with_a_static_address(deployed_static: dict[str, Any]) -> None:
    files = deployed_static["files"]
    first = {
        c["path"]: c["interface"]
        for c in deployed_static["report"]["network"]
        if c["action"] in ("static", "created")
    }
    assert first == {
        "/etc/network/interfaces": "ens3",
        "/etc/netplan/50-cloud-init.yaml": "e*",
        "/etc/NetworkManager/system-connections/eth0.nmconnection": "eth0",
        "/etc/sysconfig/network-scripts/ifcfg-eth0": "eth0",
        "/etc/sysconfig/network/ifcfg-eth0": "eth0",
        "/etc/sysconfig/network/ifroute-eth0": "eth0",
        "/etc/sysconfig/network/config": None,
        "/etc/systemd/network/10-ens6.network": "en* eth*",
    }
    for path in first:
        assert "192.0.2." in files[path][0], path  # the address, gateway or DNS server
    assert files["/etc/sysconfig/network/ifroute-eth0"][0] == "default 192.0.2.1 - eth0\n"
    assert "address 192.0.2.10/24\n" in files["/etc/network/interfaces"][0]
    assert "IPADDR=192.0.2.10\n" in files["/etc/sysconfig/network-scripts/ifcfg-eth0"][0]
    assert files["/etc/sysconfig/network/ifroute-eth0"][1:] == [0o644, 0, 0]
    for path, found in files.items():
        expected = NETWORK_RESET.get(path, b"")
        if expected is None:
            assert found is None, path  # removed, as in a reset
            continue
        if found is not None:
            assert template_pins(found[0].encode()) == [], path
            assert "52:54:00" not in found[0].lower(), path  # no MAC is written
    keyfile = files["/etc/NetworkManager/system-connections/eth0.nmconnection"]
    assert keyfile[1:] == [0o600, 0, 0]  # NetworkManager reads only private keyfiles


def test_deploy_creates_a_config_when_the_image_has_none(
    deployed_new_file: dict[str, Any],
) -> None:
    content, mode, uid, gid = deployed_new_file["files"]["/etc/netplan/60-hostimage.yaml"]
    assert (mode, uid, gid) == (0o600, 0, 0)
    assert "192.0.2.10/24" in content and "via: 192.0.2.1" in content and "e*" in content
    (change,) = deployed_new_file["report"]["network"]
    assert (change["action"], change["family"]) == ("created", "netplan")
    assert "/etc/netplan/60-hostimage.yaml" in deployed_new_file["report"]["written"]


def test_deploy_writes_hostname_and_hosts(deployed_root: DiskReader) -> None:
    assert deployed_root.read("/etc/hostname") == f"{NEW_HOSTNAME}\n".encode()
    hosts = deployed_root.read("/etc/hosts").decode().splitlines()
    assert hosts == ["127.0.0.1\tlocalhost", f"127.0.1.1\t{NEW_HOSTNAME} web-01", "::1\tlocalhost"]
    assert TEMPLATE_HOSTNAME not in "\n".join(hosts)


def test_deploy_writes_machine_id(deployed_root: DiskReader) -> None:
    assert deployed_root.read("/etc/machine-id") == f"{NEW_MACHINE_ID}\n".encode()
    assert OLD_MACHINE_ID not in deployed_root.read("/etc/machine-id").decode()


def test_deploy_sets_the_password_hash_only(
    deployed: dict[str, Any], deployed_root: DiskReader
) -> None:
    before = original("/etc/shadow").decode().splitlines()
    after = deployed_root.read("/etc/shadow").decode().splitlines()
    assert after[:2] == before[:2]  # root and daemon unchanged
    fields = after[2].split(":")
    assert fields[0] == "cloud" and fields[1] == deployed["hash"]
    assert fields[2:] == before[2].split(":")[2:]
    shadow = deployed_root.stat("/etc/shadow")
    assert shadow is not None and (shadow.mode, shadow.uid, shadow.gid) == (0o640, 0, 0)


def test_deploy_installs_the_ssh_key(deployed_root: DiskReader) -> None:
    ssh_dir = deployed_root.stat("/home/cloud/.ssh")
    assert ssh_dir is not None
    assert (ssh_dir.kind, ssh_dir.mode, ssh_dir.uid, ssh_dir.gid) == (
        "directory",
        0o700,
        CLOUD_UID,
        CLOUD_GID,
    )
    keys = deployed_root.stat("/home/cloud/.ssh/authorized_keys")
    assert keys is not None
    assert (keys.mode, keys.uid, keys.gid) == (0o600, CLOUD_UID, CLOUD_GID)
    assert deployed_root.read("/home/cloud/.ssh/authorized_keys") == f"{SSH_KEY}\n".encode()


def test_deploy_keeps_user_data(deployed_root: DiskReader) -> None:
    assert deployed_root.read(PAYLOAD_PATH) == payload_bytes()
    assert deployed_root.read("/etc/passwd") == original("/etc/passwd")


def test_deploy_for_a_missing_user_fails_before_writing(tmp_path: Path) -> None:
    require_tools("mkfs.ext4", "sfdisk", "debugfs")
    disk = build_template_disk(tmp_path, "template", fmt="raw")
    with pytest.raises(IdentityError, match="'nobody' does not exist"):
        guestfs.deploy_identity(
            disk.path, "raw", hostname="x1", machine_id=NEW_MACHINE_ID, login_user="nobody"
        )
    with open_filesystem(disk.path, "raw", tmp_path, 2) as root:
        assert root.read("/etc/hostname") == original("/etc/hostname")
        assert root.read("/etc/machine-id") == original("/etc/machine-id")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hostname", "bad_host"),
        ("hostname", "-leading"),
        ("hostname", "ok\nsecond"),
        ("machine_id", "not-hex"),
        ("machine_id", NEW_MACHINE_ID.upper()),
        ("login_user", "root:x"),
        ("password_hash", "plaintext"),
        ("password_hash", "$6$salt$" + "a" * 85 + ":"),
        ("password_hash", "$1$md5$abcdefghijklmnopqrstuv"),
        ("ssh_public_key", "ssh-ed25519 AAAA\nssh-rsa BBBB"),
        ("ssh_public_key", 'command="sh" ssh-ed25519 AAAA'),
    ],
)
def test_invalid_identity_is_refused_without_a_launch(
    tmp_path: Path, field: str, value: str
) -> None:
    args: dict[str, Any] = {
        "hostname": "vm1",
        "machine_id": NEW_MACHINE_ID,
        "login_user": "cloud",
        "password_hash": None,
        "ssh_public_key": None,
    }
    args[field] = value
    # The image does not exist: reaching qemu-img or guestfish would raise something else.
    with pytest.raises(IdentityError):
        guestfs.deploy_identity(tmp_path / "missing.raw", "raw", **args)
