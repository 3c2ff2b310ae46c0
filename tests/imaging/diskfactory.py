"""Build real test disks without root mounts, and read files back from them independently.

A minimal Linux root is written as a directory tree, packed into an ext4 filesystem with
``mkfs.ext4 -d``, placed into an MBR or GPT partitioned raw disk (``sfdisk`` + plain file
I/O) and optionally converted to qcow2. ``DiskReader`` reads files back with ``debugfs`` so
tests verify results without going through the code under test.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

MIB = 1 << 20
SECTOR = 512

TEMPLATE_HOSTNAME = "template-vm"
CLOUD_UID = 1000
CLOUD_GID = 1000
OLD_MACHINE_ID = "0123456789abcdef0123456789abcdef"
PAYLOAD_PATH = "/srv/data/payload.bin"


def payload_bytes(size: int = 300_000) -> bytes:
    """Known, incompressible bytes for the user-data file (derived from SHA-256 blocks)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


# path -> (content, mode); the owner is root unless listed in _CLOUD_OWNED.
TEMPLATE_FILES: dict[str, tuple[bytes, int]] = {
    "/etc/hostname": (f"{TEMPLATE_HOSTNAME}\n".encode(), 0o644),
    "/etc/hosts": (
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{TEMPLATE_HOSTNAME}\n::1\tlocalhost\n".encode(),
        0o644,
    ),
    "/etc/passwd": (
        b"root:x:0:0:root:/root:/bin/bash\n"
        b"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        b"cloud:x:1000:1000:Cloud User:/home/cloud:/bin/bash\n",
        0o644,
    ),
    "/etc/shadow": (
        b"root:*:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\ncloud:!:19700:0:99999:7:::\n",
        0o640,
    ),
    "/etc/group": (b"root:x:0:\ncloud:x:1000:\n", 0o644),
    "/etc/machine-id": (f"{OLD_MACHINE_ID}\n".encode(), 0o444),
    "/var/lib/dbus/machine-id": (f"{OLD_MACHINE_ID}\n".encode(), 0o444),
    "/etc/ssh/sshd_config": (b"PermitRootLogin no\n", 0o644),
    "/etc/ssh/ssh_host_rsa_key": (b"-----BEGIN OPENSSH PRIVATE KEY-----\nrsa\n", 0o600),
    "/etc/ssh/ssh_host_rsa_key.pub": (b"ssh-rsa AAAAB3NzaC1yc2E template\n", 0o644),
    "/etc/ssh/ssh_host_ed25519_key": (b"-----BEGIN OPENSSH PRIVATE KEY-----\ned\n", 0o600),
    "/etc/ssh/ssh_host_ed25519_key.pub": (b"ssh-ed25519 AAAAC3NzaC1lZDI1 template\n", 0o644),
    "/etc/udev/rules.d/70-persistent-net.rules": (
        b'SUBSYSTEM=="net", ATTR{address}=="52:54:00:12:34:56", NAME="eth0"\n',
        0o644,
    ),
    "/etc/udev/rules.d/99-local.rules": (b"# kept\n", 0o644),
    "/var/lib/cloud/instances/i-0abc/user-data.txt": (b"#cloud-config\n", 0o600),
    "/var/lib/cloud/instances/i-0abc/sem/config_ssh": (b"done\n", 0o644),
    "/var/lib/cloud/data/instance-id": (b"i-0abc\n", 0o644),
    "/var/log/messages": (b"Jan 1 00:00:00 template-vm kernel: hello\n", 0o640),
    "/var/log/app/x.log": (b"app log line\n", 0o644),
    "/tmp/junk": (b"junk\n", 0o644),
    # Names that would break a naively quoted guestfish script.
    '/tmp/we\nird "q" \u00e9\\': (b"odd\n", 0o644),
    '/var/log/odd "name" $x.log': (b"odd\n", 0o644),
    "/tmp/sub/deeper/file": (b"deep\n", 0o644),
    "/var/tmp/vt.tmp": (b"var tmp\n", 0o644),
    "/home/cloud/.bashrc": (b"# cloud's shell\n", 0o644),
    PAYLOAD_PATH: (payload_bytes(), 0o644),
}

# The template's network, one family at a time: each pins the template's addresses and MACs
# the way that family's tools write them, next to configs that pin nothing (they must stay).
NETWORK_FAMILIES: dict[str, dict[str, tuple[bytes, int]]] = {
    "debian12": {
        "/etc/network/interfaces": (
            b"# This file describes the network interfaces available on your system\n"
            b"# and how to activate them. For more information, see interfaces(5).\n"
            b"\n"
            b"source /etc/network/interfaces.d/*\n"
            b"\n"
            b"# The loopback network interface\n"
            b"auto lo\n"
            b"iface lo inet loopback\n"
            b"\n"
            b"# The primary network interface\n"
            b"allow-hotplug ens3\n"
            b"iface ens3 inet static\n"
            b"\taddress 10.20.30.40/24\n"
            b"\tgateway 10.20.30.1\n"
            b"\thwaddress ether 52:54:00:12:34:56\n"
            b"\t# dns-* options are implemented by the resolvconf package, if installed\n"
            b"\tdns-nameservers 10.20.30.2\n"
            b"\tdns-search example.internal\n"
            b"\n"
            b"iface ens3 inet6 static\n"
            b"\taddress fd00:20:30::40/64\n"
            b"\tgateway fd00:20:30::1\n",
            0o644,
        ),
        "/etc/network/interfaces.d/60-backend": (
            b"# backend network\nauto ens4\niface ens4 inet static\n"
            b"    address 192.168.50.40\n    netmask 255.255.255.0\n",
            0o644,
        ),
        "/etc/network/interfaces.d/70-spare": (
            b"allow-hotplug ens5\niface ens5 inet dhcp\n",
            0o644,
        ),
    },
    "ubuntu": {
        "/etc/netplan/50-cloud-init.yaml": (
            b"# This file is generated from information provided by the datasource.\n"
            b"network:\n"
            b"    version: 2\n"
            b"    ethernets:\n"
            b"        ens3:\n"
            b"            match:\n"
            b"                macaddress: 52:54:00:12:34:57\n"
            b"            set-name: ens3\n"
            b"            addresses:\n"
            b"            - 10.20.31.40/24\n"
            b"            routes:\n"
            b"            -   to: default\n"
            b"                via: 10.20.31.1\n"
            b"            nameservers:\n"
            b"                addresses: [10.20.31.2]\n"
            b"                search: [example.internal]\n"
            b"            mtu: 1500\n"
            b"        ens4:\n"
            b"            match:\n"
            b"                macaddress: fa:16:3e:00:00:04\n"
            b"            set-name: ens4\n"
            b"            addresses: [192.168.51.40/24]\n",
            0o600,
        ),
        "/etc/netplan/90-spare.yaml": (
            b"network:\n  version: 2\n  ethernets:\n    ens9:\n      dhcp4: true\n",
            0o600,
        ),
    },
    "rhel": {
        "/etc/sysconfig/network-scripts/ifcfg-eth0": (
            b"# Generated by the template build\n"
            b"TYPE=Ethernet\n"
            b"DEVICE=eth0\n"
            b'NAME="System eth0"\n'
            b'UUID="5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03"\n'
            b"ONBOOT=yes\n"
            b"BOOTPROTO=none\n"
            b"IPADDR=10.20.32.40\n"
            b"PREFIX=24\n"
            b"GATEWAY=10.20.32.1\n"
            b"DNS1=10.20.32.2\n"
            b"HWADDR=52:54:00:12:34:59\n"
            b"IPV6INIT=yes\n"
            b"IPV6ADDR=fd00:20:32::40/64\n"
            b"IPV6_DEFAULTGW=fd00:20:32::1\n",
            0o644,
        ),
        "/etc/sysconfig/network-scripts/ifcfg-eth1": (
            b"DEVICE=eth1\nBOOTPROTO=static\nIPADDR=192.168.52.40\n"
            b"NETMASK=255.255.255.0\nONBOOT=yes\n",
            0o644,
        ),
        "/etc/sysconfig/network-scripts/ifcfg-eth2": (
            b"DEVICE=eth2\nBOOTPROTO=dhcp\nONBOOT=no\n",
            0o644,
        ),
        "/etc/sysconfig/network-scripts/ifcfg-lo": (b"DEVICE=lo\nONBOOT=yes\n", 0o644),
        "/etc/sysconfig/network-scripts/route-eth0": (
            b"10.99.0.0/16 via 10.20.32.254 dev eth0\n",
            0o644,
        ),
        "/etc/NetworkManager/system-connections/eth0.nmconnection": (
            b"[connection]\n"
            b"id=cloud-eth0\n"
            b"uuid=0b9e6f2c-6a1e-4a4c-9f2e-3c2d1e0f0a01\n"
            b"type=ethernet\n"
            b"interface-name=eth0\n"
            b"\n"
            b"[ethernet]\n"
            b"mac-address=52:54:00:12:34:5A\n"
            b"cloned-mac-address=52:54:00:12:34:5B\n"
            b"\n"
            b"[ipv4]\n"
            b"method=manual\n"
            b"address1=10.20.32.41/24,10.20.32.1\n"
            b"dns=10.20.32.2;\n"
            b"dns-search=example.internal;\n"
            b"\n"
            b"[ipv6]\n"
            b"addr-gen-mode=eui64\n"
            b"method=manual\n"
            b"address1=fd00:20:32::41/64\n"
            b"gateway=fd00:20:32::1\n"
            b"\n"
            b"[proxy]\n",
            0o600,
        ),
        "/etc/NetworkManager/system-connections/eth1 backend.nmconnection": (
            b"[connection]\nid=backend\nuuid=7d3f2b1a-0c4e-4b8a-9e21-5a6b7c8d9e02\n"
            b"type=ethernet\n\n[ethernet]\nmac-address=FA:16:3E:00:00:05\n\n"
            b"[ipv4]\nmethod=auto\n",
            0o600,
        ),
        "/etc/NetworkManager/system-connections/spare.nmconnection": (
            b"[connection]\nid=spare\nuuid=1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e03\n"
            b"type=ethernet\ninterface-name=eth3\n\n[ipv4]\nmethod=auto\n",
            0o600,
        ),
    },
    "networkd": {
        "/etc/systemd/network/10-ens6.network": (
            b"[Match]\n"
            b"MACAddress=52:54:00:12:34:5c\n"
            b"\n"
            b"[Network]\n"
            b"Address=10.20.33.40/24\n"
            b"Gateway=10.20.33.1\n"
            b"DNS=10.20.33.2\n"
            b"Domains=example.internal\n"
            b"\n"
            b"[Route]\n"
            b"Destination=172.16.0.0/12\n"
            b"Gateway=10.20.33.254\n",
            0o644,
        ),
        "/etc/systemd/network/10-ens6.link": (
            b"[Match]\nMACAddress=52:54:00:12:34:5c\n\n[Link]\nName=ens6\n",
            0o644,
        ),
        "/etc/systemd/network/20-ens7.network": (
            b"[Match]\nName=ens7\n\n[Network]\nAddress=192.168.53.40/24\n",
            0o644,
        ),
        "/etc/systemd/network/30-dhcp.network": (
            b"[Match]\nName=eth*\n\n[Network]\nDHCP=yes\n",
            0o644,
        ),
        "/etc/systemd/network/br0.netdev": (
            b"[NetDev]\nName=br0\nKind=bridge\nMACAddress=52:54:00:12:34:5d\n",
            0o644,
        ),
    },
    "suse": {
        "/etc/sysconfig/network/ifcfg-eth0": (
            b"BOOTPROTO='static'\n"
            b"STARTMODE='auto'\n"
            b"IPADDR='10.20.34.40/24'\n"
            b"LLADDR='52:54:00:12:34:5e'\n"
            b"NAME='Ethernet Card 0'\n",
            0o644,
        ),
        "/etc/sysconfig/network/ifcfg-lo": (
            b"IPADDR=127.0.0.1\nNETMASK=255.0.0.0\nNETWORK=127.0.0.0\n"
            b"STARTMODE=nfsroot\nBOOTPROTO=static\n",
            0o644,
        ),
        "/etc/sysconfig/network/routes": (b"default 10.20.34.1 - -\n", 0o644),
        "/etc/sysconfig/network/config": (
            b"## Path: Network/General\n"
            b'NETCONFIG_DNS_POLICY="auto"\n'
            b'NETCONFIG_DNS_STATIC_SERVERS="10.20.34.2"\n',
            0o644,
        ),
    },
}

# RHEL's global network file: a file where SUSE has a directory, so only on RHEL-only disks.
RHEL_GLOBAL: dict[str, tuple[bytes, int]] = {
    "/etc/sysconfig/network": (
        b"NETWORKING=yes\nHOSTNAME=template-vm\nGATEWAY=10.20.32.1\nGATEWAYDEV=eth0\n",
        0o644,
    ),
}

ALL_FAMILIES = tuple(NETWORK_FAMILIES)

# What the network reset (DHCP on the first interface) leaves of each file above: new
# content, or None when the file goes. Files not listed stay as they were.
NETWORK_RESET: dict[str, bytes | None] = {
    "/etc/network/interfaces": (
        b"# This file describes the network interfaces available on your system\n"
        b"# and how to activate them. For more information, see interfaces(5).\n"
        b"\n"
        b"source /etc/network/interfaces.d/*\n"
        b"\n"
        b"# The loopback network interface\n"
        b"auto lo\n"
        b"iface lo inet loopback\n"
        b"\n"
        b"# The primary network interface\n"
        b"allow-hotplug ens3\n"
        b"iface ens3 inet dhcp\n"
        b"\t# dns-* options are implemented by the resolvconf package, if installed\n"
        b"\tdns-search example.internal\n"
        b"\n"
        b"iface ens3 inet6 auto\n"
    ),
    "/etc/network/interfaces.d/60-backend": None,
    "/etc/netplan/50-cloud-init.yaml": (
        b"network:\n"
        b"  version: 2\n"
        b"  ethernets:\n"
        b"    ens3:\n"
        b"      match:\n"
        b"        name: e*\n"
        b"      nameservers:\n"
        b"        search:\n"
        b"        - example.internal\n"
        b"      mtu: 1500\n"
        b"      dhcp4: true\n"
    ),
    "/etc/sysconfig/network-scripts/ifcfg-eth0": (
        b"# Generated by the template build\n"
        b"TYPE=Ethernet\n"
        b"DEVICE=eth0\n"
        b'NAME="System eth0"\n'
        b"ONBOOT=yes\n"
        b"BOOTPROTO=dhcp\n"
        b"IPV6INIT=yes\n"
        b"IPV6_AUTOCONF=yes\n"
    ),
    "/etc/sysconfig/network-scripts/ifcfg-eth1": None,
    "/etc/sysconfig/network-scripts/route-eth0": None,
    "/etc/NetworkManager/system-connections/eth0.nmconnection": (
        b"[connection]\n"
        b"id=cloud-eth0\n"
        b"uuid=0b9e6f2c-6a1e-4a4c-9f2e-3c2d1e0f0a01\n"
        b"type=ethernet\n"
        b"interface-name=eth0\n"
        b"\n"
        b"[ethernet]\n"
        b"\n"
        b"[ipv4]\n"
        b"method=auto\n"
        b"dns-search=example.internal;\n"
        b"\n"
        b"[ipv6]\n"
        b"addr-gen-mode=eui64\n"
        b"method=auto\n"
        b"\n"
        b"[proxy]\n"
    ),
    "/etc/NetworkManager/system-connections/eth1 backend.nmconnection": None,
    "/etc/systemd/network/10-ens6.network": (
        b"[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\nDomains=example.internal\n\n"
    ),
    "/etc/systemd/network/10-ens6.link": None,
    "/etc/systemd/network/20-ens7.network": None,
    "/etc/systemd/network/br0.netdev": b"[NetDev]\nName=br0\nKind=bridge\n",
    "/etc/sysconfig/network/ifcfg-eth0": (
        b"BOOTPROTO='dhcp'\nSTARTMODE='auto'\nNAME='Ethernet Card 0'\n"
    ),
    "/etc/sysconfig/network/routes": None,
    "/etc/sysconfig/network/config": (
        b'## Path: Network/General\nNETCONFIG_DNS_POLICY="auto"\nNETCONFIG_DNS_STATIC_SERVERS=""\n'
    ),
    "/etc/sysconfig/network": b"NETWORKING=yes\nHOSTNAME=template-vm\n",
}

# Every address, gateway, DNS server and MAC the template's network configs pin.
_TEMPLATE_PINS = re.compile(
    r"10\.20\.3\d\.\d+|10\.99\.|192\.168\.5\d\.|fd00:20:3\d::"
    r"|52:54:00:12:34:[0-9a-f]{2}|fa:16:3e:00:00:0\d",
    re.IGNORECASE,
)


def template_pins(content: bytes) -> list[str]:
    """The template's addresses and MACs still found in ``content`` (none after a reset)."""
    return _TEMPLATE_PINS.findall(content.decode("utf-8", "replace"))


def network_files(families: tuple[str, ...] = ALL_FAMILIES) -> dict[str, tuple[bytes, int]]:
    """The network configs of the named families (keys of ``NETWORK_FAMILIES``)."""
    out: dict[str, tuple[bytes, int]] = {}
    for family in families:
        out.update(NETWORK_FAMILIES[family])
    return out


# Names that only the libguestfs path handles (the fast path steps aside for them).
ODD_NAMES = [name for name in TEMPLATE_FILES if "\n" in name]

TEMPLATE_DIRS: dict[str, int] = {
    "/root": 0o700,
    "/home/cloud": 0o755,
    "/var/log/journal": 0o755,
    "/var/log/apt": 0o755,
    "/tmp": 0o1777,
    "/var/tmp": 0o1777,
}

# name -> target: a host key that is a link to user data, a link inside /var/log to a data
# directory and cloud-init's usual "instance" link; cleaning must never follow them.
TEMPLATE_SYMLINKS: dict[str, str] = {
    "/etc/ssh/ssh_host_dsa_key": PAYLOAD_PATH,
    "/var/log/data-link": "/srv/data",
    "/var/lib/cloud/instance": "/var/lib/cloud/instances/i-0abc",
}

_CLOUD_OWNED = ("/home/cloud",)


IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing_tool(message: str) -> None:
    """Skip the calling test, or fail it under CI (where every tool must be installed)."""
    if IN_CI:
        pytest.fail(f"{message} (scripts/setup installs it)")
    pytest.skip(message)


def require_tools(*names: str) -> None:
    """Skip (fail under CI) the calling test when one of the named system tools is missing."""
    missing = [name for name in names if _which(name) is None]
    if missing:
        missing_tool(f"missing system tools: {', '.join(missing)}")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _tool(name: str) -> str:
    found = _which(name)
    if found is None:
        missing_tool(f"{name} is not installed")
        raise AssertionError("unreachable")
    return found


def _run(*argv: str | Path, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        [str(a) for a in argv], input=stdin, capture_output=True, check=False, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def write_tree(
    root: Path,
    files: Mapping[str, tuple[bytes, int]],
    dirs: Mapping[str, int] | None = None,
    symlinks: Mapping[str, str] | None = None,
) -> Path:
    """Write files, directories and symlinks (guest paths) below ``root``; return ``root``."""
    for guest, mode in (dirs or {}).items():
        path = root / guest.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
    for guest, (content, mode) in files.items():
        path = root / guest.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    for guest, target in (symlinks or {}).items():
        path = root / guest.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    return root


def write_template_tree(
    root: Path,
    network: Mapping[str, tuple[bytes, int]] | None = None,
    extra_dirs: Mapping[str, int] | None = None,
    symlinks: Mapping[str, str] | None = None,
) -> Path:
    """Write the minimal Linux root used as a template VM's system filesystem, with
    ``network`` configs (default: every family of ``NETWORK_FAMILIES``)."""
    files = {**TEMPLATE_FILES, **(network_files() if network is None else network)}
    dirs = {**TEMPLATE_DIRS, **(extra_dirs or {})}
    write_tree(root, files, dirs, {**TEMPLATE_SYMLINKS, **(symlinks or {})})
    for guest in _CLOUD_OWNED:
        for dirpath, _dirs, names in os.walk(root / guest.lstrip("/")):
            for name in [".", *names]:
                # Without root, mkfs.ext4 -d simply records our own uid instead.
                with suppress(PermissionError):
                    os.chown(Path(dirpath) / name, CLOUD_UID, CLOUD_GID)
    return root


def make_ext4(path: Path, size: int, source: Path | None = None, label: str = "") -> Path:
    """Create an ext4 filesystem image of ``size`` bytes at ``path``, filled from ``source``."""
    argv: list[str | Path] = [_tool("mkfs.ext4"), "-q", "-F", "-b", "4096", "-E", "root_owner"]
    if label:
        argv += ["-L", label]
    if source is not None:
        argv += ["-d", source]
    with path.open("wb") as handle:
        handle.truncate(size)
    _run(*argv, path)
    return path


def make_partitioned_disk(path: Path, filesystems: list[Path], table: str = "gpt") -> Path:
    """Create a raw disk with one partition per filesystem image, copied at its offset.

    Partitions start at 1 MiB, are MiB-aligned and typed Linux; ``table`` is gpt or dos.
    """
    sfdisk = _tool("sfdisk")
    starts = []
    offset = MIB
    lines = [f"label: {table}"]
    for fs in filesystems:
        size = -(-fs.stat().st_size // MIB) * MIB
        starts.append(offset)
        lines.append(f"start={offset // SECTOR}, size={size // SECTOR}, type=L")
        offset += size
    with path.open("wb") as handle:
        handle.truncate(offset + MIB)  # room for the backup GPT
    _run(sfdisk, "-q", "--no-reread", "--no-tell-kernel", path, stdin="\n".join(lines).encode())
    with path.open("r+b") as disk:
        for fs, start in zip(filesystems, starts, strict=True):
            disk.seek(start)
            with fs.open("rb") as src:
                shutil.copyfileobj(src, disk, MIB)
    return path


def to_qcow2(raw: Path, dst: Path) -> Path:
    """Convert a raw disk to qcow2 with qemu-img directly (not through the code under test)."""
    _run(_tool("qemu-img"), "convert", "-q", "-f", "raw", "-O", "qcow2", raw, dst)
    return dst


@dataclass(frozen=True)
class TemplateDisk:
    """A template system disk: partition 1 is a small /boot-like filesystem without /etc,
    partition 2 holds the Linux root."""

    path: Path
    fmt: str
    root_partition: int = 2


def build_template_disk(
    workdir: Path,
    name: str,
    *,
    table: str = "gpt",
    fmt: str = "raw",
    network: Mapping[str, tuple[bytes, int]] | None = None,
    extra_dirs: Mapping[str, int] | None = None,
    symlinks: Mapping[str, str] | None = None,
    odd_names: bool = True,
) -> TemplateDisk:
    """Build a two-partition template system disk in ``workdir`` as ``fmt`` (raw or qcow2),
    with ``network`` configs (default: every family), ``extra_dirs`` and ``symlinks`` and,
    unless ``odd_names`` is false, the file names with line breaks that no real VM has."""
    work = workdir / f"{name}.parts"
    work.mkdir(parents=True)
    boot_tree = write_tree(work / "boot-tree", {"/vmlinuz-fake": (b"not a kernel\n", 0o644)})
    boot = make_ext4(work / "boot.ext4", 8 * MIB, boot_tree, label="boot")
    tree = write_template_tree(work / "root-tree", network, extra_dirs, symlinks)
    if not odd_names:
        for odd in ODD_NAMES:
            (tree / odd.lstrip("/")).unlink()
    root = make_ext4(work / "root.ext4", 32 * MIB, tree, "root")
    raw = make_partitioned_disk(workdir / f"{name}.raw", [boot, root], table=table)
    shutil.rmtree(work)
    if fmt == "raw":
        return TemplateDisk(raw, "raw")
    qcow = to_qcow2(raw, workdir / f"{name}.qcow2")
    raw.unlink()
    return TemplateDisk(qcow, "qcow2")


def build_data_disk(path: Path, kind: str = "ext4", size: int = 16 * MIB) -> Path:
    """Build a data disk: ``ext4`` (unpartitioned, with a file), ``random`` bytes, or ``blank``."""
    if kind == "ext4":
        tree = write_tree(path.with_suffix(".tree"), {"/data.txt": (b"data disk\n", 0o644)})
        make_ext4(path, size, tree, label="data")
        shutil.rmtree(tree)
    elif kind == "random":
        with path.open("wb") as handle:
            handle.write(os.urandom(size))
    elif kind == "blank":
        with path.open("wb") as handle:
            handle.truncate(size)
    else:
        raise ValueError(kind)
    return path


@dataclass(frozen=True)
class Stat:
    """The parts of an inode tests look at."""

    kind: str  # "regular", "directory", "symlink", …
    mode: int  # permission bits only
    uid: int
    gid: int
    size: int


def _q(path: str) -> str:
    # debugfs reads "…" as one argument, with "" for a quote.
    return '"' + path.replace('"', '""') + '"'


class DiskReader:
    """Read one ext4 filesystem (extracted from a disk image) with ``debugfs``."""

    def __init__(self, fs_image: Path) -> None:
        self.fs_image = fs_image

    def _debugfs(self, request: str) -> tuple[bytes, str]:
        done = subprocess.run(
            [_tool("debugfs"), "-R", request, str(self.fs_image)],
            capture_output=True,
            check=False,
            timeout=120,
        )
        return done.stdout, done.stderr.decode(errors="replace")

    def stat(self, path: str) -> Stat | None:
        """Return the inode of ``path`` (not following a final symlink), or None if absent."""
        out, err = self._debugfs(f"stat {_q(path)}")
        text = out.decode(errors="replace")
        if "not found" in err or "Type:" not in text:
            return None
        kind = re.search(r"Type: (\w+)", text)
        mode = re.search(r"Mode:\s+(\d+)", text)
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", text)
        size = re.search(r"Size: (\d+)", text)
        assert kind and mode and owner and size, text
        return Stat(
            kind.group(1),
            int(mode.group(1), 8) & 0o7777,
            int(owner.group(1)),
            int(owner.group(2)),
            int(size.group(1)),
        )

    def exists(self, path: str) -> bool:
        """True if ``path`` exists (a dangling symlink counts)."""
        return self.stat(path) is not None

    def read(self, path: str) -> bytes:
        """Return the bytes of regular file ``path``; fail the test if it is missing."""
        info = self.stat(path)
        assert info is not None, f"{path} does not exist"
        assert info.kind == "regular", f"{path} is a {info.kind}"
        out, _ = self._debugfs(f"cat {_q(path)}")
        assert len(out) == info.size
        return out

    def is_empty_dir(self, path: str) -> bool:
        """True if directory ``path`` holds nothing but ``.`` and ``..`` (robust to odd names)."""
        out, err = self._debugfs(f"ls -p {_q(path)}")
        assert "not found" not in err, err
        entries = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("/")]
        return len(entries) == 2

    def listdir(self, path: str) -> list[str]:
        """Names in directory ``path`` without ``.`` and ``..``."""
        out, err = self._debugfs(f"ls -p {_q(path)}")
        assert "not found" not in err, err
        names = []
        for line in out.decode(errors="replace").splitlines():
            # "/inode/mode/uid/gid/name/size/"
            fields = line.split("/")
            if len(fields) >= 7 and fields[5] not in (".", ".."):
                names.append(fields[5])
        return sorted(names)


def assert_network_reset(root: DiskReader, files: dict[str, tuple[bytes, int]]) -> None:
    """Every config of ``files`` is as ``NETWORK_RESET`` says (or untouched), keeps its
    owner and mode, and holds none of the template's addresses or MACs."""
    for path, (content, mode) in files.items():
        expected = NETWORK_RESET.get(path, content)
        if expected is None:
            assert not root.exists(path), path
            continue
        assert root.read(path) == expected, path
        assert template_pins(root.read(path)) == [], path
        info = root.stat(path)
        assert info is not None and (info.mode, info.uid, info.gid) == (mode, 0, 0), path


def partition_table(disk_raw: Path) -> list[tuple[int, int]]:
    """(offset, length) in bytes of every partition of a raw disk, in table order."""
    out = _run(_tool("sfdisk"), "--json", disk_raw)
    parts = json.loads(out)["partitiontable"]["partitions"]
    return [(int(p["start"]) * SECTOR, int(p["size"]) * SECTOR) for p in parts]


@contextmanager
def open_filesystem(
    disk: Path, fmt: str, workdir: Path, partition: int | None = None
) -> Iterator[DiskReader]:
    """Yield a ``DiskReader`` for partition ``partition`` (1-based) of ``disk`` or, when None,
    for the whole disk as one filesystem. Works on a temporary raw copy."""
    raw = workdir / "readback.raw"
    fs = workdir / "readback.ext4"
    try:
        _run(_tool("qemu-img"), "convert", "-q", "-f", fmt, "-O", "raw", disk, raw)
        if partition is None:
            raw.rename(fs)
        else:
            start, length = partition_table(raw)[partition - 1]
            with raw.open("rb") as src, fs.open("wb") as dst:
                src.seek(start)
                remaining = length
                while remaining:
                    chunk = src.read(min(MIB, remaining))
                    assert chunk, "partition runs past the end of the disk"
                    dst.write(chunk)
                    remaining -= len(chunk)
        yield DiskReader(fs)
    finally:
        raw.unlink(missing_ok=True)
        fs.unlink(missing_ok=True)


def once_per_run(
    factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict[str, object]]
) -> tuple[Path, dict[str, object]]:
    """Run ``build(workdir)`` once per test run, even across pytest-xdist workers.

    Expensive results (an appliance launch) are shared: the first worker to take the lock
    builds into ``workdir`` and stores the JSON-able result; the others wait and reuse it.
    """
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by every worker of this run
    workdir = base / f"shared-{name}"
    with (base / f"shared-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = workdir / "result.json"
        if result.exists():
            return workdir, dict(json.loads(result.read_text()))
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir()
        text = json.dumps(build(workdir))
        result.write_text(text)
        # Every caller gets the JSON form, whether it built the result or reused it.
        return workdir, dict(json.loads(text))
