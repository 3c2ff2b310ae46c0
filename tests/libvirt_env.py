"""A real libvirt daemon for tests, with scratch pools, test disks and test domains.

``ensure_daemon()`` starts virtlogd and libvirtd (listening on TCP at 127.0.0.1 without
authentication) unless a daemon already runs; a file lock keeps two xdist workers from
starting two. A daemon that runs without TCP is restarted with TCP only under ``CI=true`` or
when these helpers started it; otherwise the tests that need TCP fail and say why.

Everything made here is named ``hi-test-<pid>-<hex>`` (domains, pools, directories under
``/var/tmp/hostimage-test-libvirt``, kept 0755 so QEMU, running as libvirt-qemu, can open
the images). Leftovers of test processes that are gone are removed when a daemon is
ensured. Without libvirt the tests fail under ``CI=true`` and are skipped otherwise; root is
required.

Fixtures (import them into a conftest): ``libvirt_daemon`` (session), ``libvirt_pool`` and
``test_domains`` (per test).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
ROOT = Path("/var/tmp/hostimage-test-libvirt")
LOCAL_URI = "qemu:///system"
TCP_URI = "qemu+tcp://127.0.0.1/system"
PREFIX = "hi-test-"
MIB = 1 << 20

_DAEMON_CONF = """\
# Written by the hostimage tests: the system daemon, also on TCP at 127.0.0.1, no auth.
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
auth_tcp = "none"
"""
_LIBVIRTD_PIDFILE = Path("/run/libvirtd.pid")
_VIRTLOGD_PIDFILE = Path("/run/virtlogd.pid")
_MARKER = ROOT / "daemon.pid"  # the pid of a libvirtd these helpers started


def unavailable(message: str) -> None:
    """Skip the calling test, or fail it under CI (where scripts/setup installed libvirt)."""
    if IN_CI:
        pytest.fail(f"{message} (scripts/setup installs libvirt; the tests need root)")
    pytest.skip(message)


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def unique_name(tag: str = "") -> str:
    """``hi-test-<pid>-[tag-]<hex>``: unique, and tells which test process made it."""
    middle = f"{tag}-" if tag else ""
    return f"{PREFIX}{os.getpid()}-{middle}{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Daemon:
    """The running system daemon: ``uri`` (local socket) and, when it listens on TCP,
    ``tcp_uri``; ``tcp_problem`` says why it does not."""

    uri: str = LOCAL_URI
    tcp_uri: str | None = TCP_URI
    tcp_problem: str | None = None

    def require_tcp(self) -> str:
        """The TCP URI, or fail the test with the reason the daemon has none."""
        if self.tcp_uri is None:
            pytest.fail(self.tcp_problem or "libvirtd does not listen on TCP")
        return self.tcp_uri

    def uris(self) -> list[str]:
        """The URIs a test should cover: local, and TCP when available."""
        return [self.uri] + ([self.tcp_uri] if self.tcp_uri else [])

    def connect(self) -> Any:
        """A new connection over the local socket (close it when done)."""
        import libvirt

        return libvirt.open(self.uri)


_cached: Daemon | None = None


def ensure_daemon() -> Daemon:
    """The running daemon, started (or restarted with TCP, see the module doc) if needed."""
    global _cached
    if _cached is not None:
        return _cached
    if os.geteuid() != 0:
        unavailable("the libvirt tests need root (the system daemon)")
    libvirtd, virtlogd = _tool("libvirtd"), _tool("virtlogd")
    if libvirtd is None or virtlogd is None:
        unavailable("libvirtd is not installed")
    try:
        import libvirt

        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    except ImportError:
        unavailable("the libvirt Python binding is not installed")
    assert libvirtd is not None and virtlogd is not None
    ROOT.mkdir(parents=True, exist_ok=True)
    ROOT.chmod(0o755)
    with open(ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        daemon = _start_or_reuse(libvirtd, virtlogd)
        clean_leftovers(daemon)
    _cached = daemon
    return daemon


def _can_open(uri: str) -> bool:
    import libvirt

    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError:
        return False
    return True


def _pid_of(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _start_or_reuse(libvirtd: str, virtlogd: str) -> Daemon:
    if _can_open(TCP_URI):
        _ensure_virtlogd(virtlogd)
        return Daemon()
    running = _pid_of(_LIBVIRTD_PIDFILE)
    if running is not None or _can_open(LOCAL_URI):
        ours = running is not None and _pid_of(_MARKER) == running
        if not (IN_CI or ours):
            return Daemon(
                tcp_uri=None,
                tcp_problem=(
                    "libvirtd runs without listening on TCP; restart it with "
                    "`libvirtd -d --listen --config FILE` (listen_tcp = 1, listen_addr = "
                    '"127.0.0.1", auth_tcp = "none", listen_tls = 0), or stop it and let the '
                    "tests start their own"
                ),
            )
        if running is not None:
            _stop(running)
    _ensure_virtlogd(virtlogd)
    conf = ROOT / "libvirtd.conf"
    conf.write_text(_DAEMON_CONF)
    done = subprocess.run(
        [libvirtd, "-d", "--listen", "--config", str(conf)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        unavailable(f"libvirtd did not start: {done.stderr.decode(errors='replace').strip()}")
    # The first connection makes the daemon probe QEMU's capabilities: seconds, once.
    deadline = time.monotonic() + 90
    while not _can_open(TCP_URI):
        if time.monotonic() > deadline:
            unavailable("libvirtd started but does not answer on TCP 127.0.0.1:16509")
        time.sleep(0.2)
    pid = _pid_of(_LIBVIRTD_PIDFILE)
    if pid is not None:
        _MARKER.write_text(str(pid))
    return Daemon()


def _ensure_virtlogd(virtlogd: str) -> None:
    # QEMU's console output goes through virtlogd: without it no domain starts.
    if _pid_of(_VIRTLOGD_PIDFILE) is None:
        subprocess.run([virtlogd, "-d"], capture_output=True, check=False, timeout=30)


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _owner_alive(name: str) -> bool:
    """Whether the test process named in ``hi-test-<pid>-…`` still runs."""
    try:
        pid = int(name[len(PREFIX) :].split("-", 1)[0])
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(daemon: Daemon) -> None:
    """Remove domains, pools and directories named ``hi-test-*`` whose test process is gone
    (those of other live workers stay)."""
    import libvirt

    conn = libvirt.open(daemon.uri)
    try:
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(PREFIX) and not _owner_alive(dom.name()):
                remove_domain(dom)
        for pool in conn.listAllStoragePools(0):
            if pool.name().startswith(PREFIX) and not _owner_alive(pool.name()):
                with contextlib.suppress(libvirt.libvirtError):
                    if pool.isActive():
                        pool.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    pool.undefine()
    finally:
        conn.close()
    for entry in ROOT.iterdir():
        if entry.is_dir() and entry.name.startswith(PREFIX) and not _owner_alive(entry.name):
            shutil.rmtree(entry, ignore_errors=True)


def remove_domain(dom: Any) -> None:
    """Power off and undefine a domain (with its UEFI variables), whatever its state."""
    import libvirt

    with contextlib.suppress(libvirt.libvirtError):
        if dom.isActive():
            dom.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


# -- pools ----------------------------------------------------------------------------------


@dataclass
class Pool:
    """A transient directory pool of the daemon, in its own 0755 directory."""

    name: str
    path: Path
    conn: Any

    @property
    def pool(self) -> Any:
        """The ``virStoragePool``."""
        return self.conn.storagePoolLookupByName(self.name)

    def refresh(self) -> None:
        """Make files written into the directory visible as volumes."""
        self.pool.refresh(0)

    def add(self, name: str, source: Path) -> Path:
        """Move ``source`` into the pool as volume ``name`` and return its path."""
        dest = self.path / name
        shutil.move(source, dest)
        dest.chmod(0o644)
        self.refresh()
        return dest

    def volume(self, name: str) -> Any:
        """The ``virStorageVol`` called ``name``."""
        return self.pool.storageVolLookupByName(name)


def scratch_dir(tag: str = "dir") -> Path:
    """A new 0755 directory under the test root (QEMU can read it); remove it when done."""
    path = ROOT / unique_name(tag)
    path.mkdir(mode=0o755, parents=True)
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def scratch_pool(daemon: Daemon) -> Iterator[Pool]:
    """A transient directory pool, removed with its directory afterwards."""
    import libvirt

    name = unique_name("pool")
    path = ROOT / name
    path.mkdir(mode=0o755, parents=True)
    path.chmod(0o755)
    conn = libvirt.open(daemon.uri)
    xml = (
        f"<pool type='dir'><name>{name}</name>"
        f"<target><path>{path}</path><permissions><mode>0755</mode></permissions></target>"
        "</pool>"
    )
    try:
        conn.storagePoolCreateXML(xml, 0)
        yield Pool(name, path, conn)
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.storagePoolLookupByName(name).destroy()
        conn.close()
        shutil.rmtree(path, ignore_errors=True)


# -- disks ----------------------------------------------------------------------------------


def _run(*argv: str | Path) -> None:
    done = subprocess.run([str(a) for a in argv], capture_output=True, check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace').strip()}")


def make_ext4(path: Path, files: dict[str, bytes], size: int = 16 * MIB) -> Path:
    """A raw disk of ``size`` bytes holding one ext4 file system (no partition table) with
    ``files`` (relative paths → contents), written without mounting (``mkfs.ext4 -d``)."""
    mkfs = _tool("mkfs.ext4")
    if mkfs is None:
        unavailable("mkfs.ext4 is not installed")
    assert mkfs is not None
    tree = path.parent / f".{path.name}.tree"
    shutil.rmtree(tree, ignore_errors=True)
    for rel, content in files.items():
        target = tree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    tree.mkdir(exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)
    # A fixed UUID and hash seed: two file systems made from similar trees share most blocks,
    # which keeps the upper layers of a test chain small.
    _run(
        mkfs, "-q", "-F", "-b", "4096", "-U", "6c0b4f2e-6a38-4c40-9c51-4d6f2b1a7e01",
        "-E", "root_owner=0:0,hash_seed=1b4e28ba-2fa1-11d2-883f-0016d3cca427", "-d", tree, path,
    )  # fmt: skip
    shutil.rmtree(tree, ignore_errors=True)
    path.chmod(0o644)
    return path


def to_qcow2(source: Path, dest: Path, source_fmt: str = "raw") -> Path:
    """``qemu-img convert`` of ``source`` into a new qcow2 file ``dest``."""
    _run("qemu-img", "convert", "-f", source_fmt, "-O", "qcow2", source, dest)
    dest.chmod(0o644)
    return dest


def make_chain(
    directory: Path, stem: str, versions: list[dict[str, bytes]], size: int = 16 * MIB
) -> list[Path]:
    """A qcow2 backing chain in ``directory``, bottom first: layer 0 holds an ext4 file system
    with ``versions[0]``; each layer ``i`` above holds only the clusters that differ when the
    file system holds ``versions[i]`` (absolute backing paths, backing format qcow2). Returns
    the layer files, bottom first; the last one is what a guest sees."""
    full = [
        make_ext4(directory / f".{stem}.v{i}.raw", files, size) for i, files in enumerate(versions)
    ]
    layers = [to_qcow2(full[0], directory / f"{stem}-0.qcow2")]
    cluster = 64 * 1024
    for i in range(1, len(versions)):
        layer = directory / f"{stem}-{i}.qcow2"
        _run("qemu-img", "create", "-q", "-f", "qcow2", "-b", layers[-1], "-F", "qcow2", layer)
        commands: list[str] = []
        old, new = full[i - 1].read_bytes(), full[i].read_bytes()
        for offset in range(0, size, cluster):
            chunk = new[offset : offset + cluster]
            if chunk != old[offset : offset + cluster]:
                piece = directory / f".{stem}.{i}.{offset}"
                piece.write_bytes(chunk)
                commands += ["-c", f"write -q -s {piece} {offset} {len(chunk)}"]
        for start in range(0, len(commands), 200):
            _run("qemu-io", "-f", "qcow2", *commands[start : start + 200], layer)
        for piece in directory.glob(f".{stem}.{i}.*"):
            piece.unlink()
        layer.chmod(0o644)
        layers.append(layer)
    for raw in full:
        raw.unlink()
    return layers


def same_content(a: Path, a_fmt: str, b: Path, b_fmt: str) -> bool:
    """Whether two images (backing chains followed) show a guest the same bytes."""
    done = subprocess.run(
        ["qemu-img", "compare", "-q", "-f", a_fmt, "-F", b_fmt, str(a), str(b)],
        capture_output=True,
        check=False,
        timeout=300,
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"qemu-img compare failed: {done.stderr.decode(errors='replace')}")
    return done.returncode == 0


# -- domains --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskSpec:
    """One ``<disk>`` of a test domain: a file (``path``) or a pool volume."""

    target: str
    fmt: str = "raw"
    path: Path | str | None = None
    pool: str | None = None
    volume: str | None = None
    bus: str | None = None
    device: str = "disk"  # or cdrom
    kind: str | None = None  # file, volume, block, network; inferred when None

    def bus_name(self) -> str:
        return self.bus or {"vd": "virtio", "sd": "scsi", "hd": "ide"}[self.target[:2]]

    def xml(self) -> ET.Element:
        kind = self.kind or ("volume" if self.pool else "file")
        disk = ET.Element("disk", type=kind, device=self.device)
        ET.SubElement(disk, "driver", name="qemu", type=self.fmt)
        if kind == "volume":
            ET.SubElement(disk, "source", pool=str(self.pool), volume=str(self.volume))
        elif kind == "block":
            ET.SubElement(disk, "source", dev=str(self.path))
        elif kind == "network":
            source = ET.SubElement(disk, "source", protocol="nbd", name="export")
            ET.SubElement(source, "host", name="127.0.0.1", port="10809")
        elif self.path is not None:
            ET.SubElement(disk, "source", file=str(self.path))
        ET.SubElement(disk, "target", dev=self.target, bus=self.bus_name())
        if self.device == "cdrom":
            ET.SubElement(disk, "readonly")
        return disk


def domain_xml_for(name: str, disks: list[DiskSpec], *, memory_mib: int = 64) -> str:
    """A minimal TCG domain (q35, no NIC) over ``disks``."""
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "vcpu").text = "1"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="q35").text = "hvm"
    devices = ET.SubElement(dom, "devices")
    if any(d.bus_name() == "scsi" for d in disks):
        ET.SubElement(devices, "controller", type="scsi", model="virtio-scsi")
    for disk in disks:
        devices.append(disk.xml())
    ET.SubElement(devices, "serial", type="pty")
    return ET.tostring(dom, encoding="unicode")


@dataclass
class Domains:
    """Defines test domains and removes them (and only them) at the end of the test."""

    daemon: Daemon
    conn: Any = None
    made: list[str] = field(default_factory=list)

    def define(self, disks: list[DiskSpec], name: str | None = None) -> tuple[str, str]:
        """Define a persistent domain over ``disks``; returns ``(uuid, name)``."""
        name = name or unique_name("dom")
        dom = self.conn.defineXML(domain_xml_for(name, disks))
        self.made.append(dom.UUIDString())
        return dom.UUIDString(), name

    def adopt(self, uuid_: str) -> None:
        """Also remove the domain ``uuid_`` (one the code under test defined) at the end."""
        self.made.append(uuid_)

    def cleanup(self) -> None:
        import libvirt

        for uuid_ in self.made:
            with contextlib.suppress(libvirt.libvirtError):
                remove_domain(self.conn.lookupByUUIDString(uuid_))
        self.conn.close()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def libvirt_daemon() -> Daemon:
    """The running libvirt daemon (started if needed)."""
    return ensure_daemon()


@pytest.fixture()
def libvirt_pool(libvirt_daemon: Daemon) -> Iterator[Pool]:
    """A transient directory pool for one test."""
    with scratch_pool(libvirt_daemon) as pool:
        yield pool


@pytest.fixture()
def libvirt_domains(libvirt_daemon: Daemon) -> Iterator[Domains]:
    """Defines domains for one test and removes them afterwards."""
    domains = Domains(libvirt_daemon, libvirt_daemon.connect())
    try:
        yield domains
    finally:
        domains.cleanup()
