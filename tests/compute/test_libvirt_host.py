"""The libvirt driver against the real daemon, over the local socket and over TCP: facts,
domains and their disks, state mapping, and the errors of an unreachable host."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time

import pytest

from hostimage.compute.libvirt_host import LibvirtHost
from hostimage.compute.model import DomainNotFound, DomainState, HostUnreachable
from tests.libvirt_env import MIB, Daemon, DiskSpec, Domains, Pool, make_ext4, scratch_dir, to_qcow2


@pytest.fixture(params=["local", "tcp"])
def uri(request: pytest.FixtureRequest, libvirt_daemon: Daemon) -> str:
    return libvirt_daemon.uri if request.param == "local" else libvirt_daemon.require_tcp()


def test_facts(uri: str) -> None:
    with LibvirtHost(uri) as host:
        facts = host.facts()
    assert facts.libvirt.count(".") == 2 and facts.libvirt[0].isdigit()
    name, version = facts.hypervisor.split(" ")
    assert name == "QEMU" and version.count(".") == 2
    assert facts.hostname


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("qemu:///session", True),
        ("qemu+unix:///system", True),
        ("test:///default", True),
        ("qemu+tcp://127.0.0.1/system", False),
        ("qemu+ssh://root@kvm-7/system", False),
    ],
)
def test_is_local(uri: str, local: bool) -> None:
    assert LibvirtHost(uri).is_local() is local


def test_unreachable_uri() -> None:
    started = time.monotonic()
    with pytest.raises(HostUnreachable, match=r"Cannot connect to 127\.0\.0\.1: "):
        LibvirtHost("qemu+tcp://127.0.0.1:1/system").__enter__()
    assert time.monotonic() - started < 10
    with pytest.raises(HostUnreachable, match="Cannot connect"):
        LibvirtHost("nosuchdriver:///system").open()


def test_state_mapping_on_the_test_driver() -> None:
    # The test driver's "test" domain runs; its state changes are instant.
    with LibvirtHost("test:///default") as host:
        (dom,) = host.domains()
        assert dom.state == DomainState.RUNNING
        raw = host.conn.lookupByUUIDString(dom.uuid)
        raw.suspend()
        assert host.domain(dom.uuid).state == DomainState.RUNNING  # paused counts as running
        raw.resume()
        host.stop(dom.uuid, timeout=0)
        assert host.domain(dom.uuid).state == DomainState.SHUTOFF
        host.stop(dom.uuid, timeout=0)  # already off: fine
        host.start(dom.uuid)
        host.start(dom.uuid)  # already running: fine
        assert host.domain(dom.uuid).state == DomainState.RUNNING
        host.undefine(dom.uuid)
        host.undefine(dom.uuid)  # gone: fine
        assert host.domains() == []
        with pytest.raises(DomainNotFound):
            host.domain(dom.uuid)
        with pytest.raises(DomainNotFound):
            host.start(dom.uuid)
        with pytest.raises(DomainNotFound):
            host.domain("not-a-uuid")


def test_domains_with_three_disks(uri: str, libvirt_pool: Pool, libvirt_domains: Domains) -> None:
    """A volume disk, a file that is a pool volume, a qcow2 file outside any pool and a
    CD-ROM: three disks in target order with sizes, pools and volumes."""
    pool = libvirt_pool
    pool.add("sys.raw", make_ext4(pool.path / ".sys", {"etc/hostname": b"alpha\n"}, 24 * MIB))
    data = make_ext4(pool.path / ".data", {"data.txt": b"beta"}, 8 * MIB)
    pool.add("data.qcow2", to_qcow2(data, pool.path / ".data.qcow2"))
    data.unlink()
    outside = scratch_dir("outside")
    try:
        loose = make_ext4(outside / "loose.raw", {"x": b"y"}, 12 * MIB)
        uuid, name = libvirt_domains.define(
            [
                DiskSpec("sdb", "raw", path=loose, bus="sata"),
                DiskSpec("sdc", "raw", device="cdrom", bus="sata"),
                DiskSpec("vdb", "qcow2", path=pool.path / "data.qcow2"),
                DiskSpec("vda", "raw", pool=pool.name, volume="sys.raw"),
            ]
        )
        with LibvirtHost(uri) as host:
            dom = host.domain(uuid)
            assert (dom.uuid, dom.name, dom.state) == (uuid, name, DomainState.SHUTOFF)
            assert dom.metadata == {}
            # sd* appears first in the XML, so the sata disk leads: order by first appearance
            # of each bus prefix, then naturally.
            assert [d.target for d in dom.disks] == ["sdb", "vda", "vdb"]
            sdb, vda, vdb = dom.disks
            assert (vda.kind, vda.format, vda.size, vda.pool, vda.volume) == (
                "volume", "raw", 24 * MIB, pool.name, "sys.raw",
            )  # fmt: skip
            assert vda.path == str(pool.path / "sys.raw") and vda.bus == "virtio"
            assert (vdb.kind, vdb.format, vdb.size, vdb.pool, vdb.volume) == (
                "file", "qcow2", 8 * MIB, pool.name, "data.qcow2",
            )  # fmt: skip
            assert (sdb.kind, sdb.size, sdb.pool, sdb.volume, sdb.bus) == (
                "file", 12 * MIB, None, None, "sata",
            )  # fmt: skip
            assert any(d.uuid == uuid for d in host.domains())
            host.start(uuid)
            try:
                assert host.domain(uuid).state == DomainState.RUNNING
            finally:
                host.stop(uuid, timeout=0)
            assert host.domain(uuid).state == DomainState.SHUTOFF
    finally:
        shutil.rmtree(outside, ignore_errors=True)


class FreezingProxy:
    """Forwards TCP connections to the daemon until frozen; then it stops moving bytes but
    keeps the connections open, as a host that vanished from the network."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                self.flowing.wait()
                dst.sendall(data)

    def close(self) -> None:
        self.flowing.set()
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()


def test_a_host_that_vanishes_mid_transfer_is_unreachable_after_the_keepalive(
    libvirt_daemon: Daemon, libvirt_pool: Pool, libvirt_domains: Domains
) -> None:
    libvirt_daemon.require_tcp()
    raw = libvirt_pool.path / ".big"
    with open(raw, "wb") as handle:
        for _ in range(64):
            handle.write(os.urandom(MIB))
    libvirt_pool.add("big.raw", raw)
    uuid, _ = libvirt_domains.define(
        [DiskSpec("vda", "raw", pool=libvirt_pool.name, volume="big.raw")]
    )
    proxy = FreezingProxy(16509)
    dest = scratch_dir("frozen")
    chunks = 0

    def check() -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 3:
            proxy.flowing.clear()

    try:
        with LibvirtHost(f"qemu+tcp://127.0.0.1:{proxy.port}/system", keepalive=(1, 2)) as host:
            (vda,) = host.domain(uuid).disks
            started = time.monotonic()
            with pytest.raises(HostUnreachable, match="Reading disk vda"):
                host.fetch_disk(vda, dest, check=check, progress=lambda _f: None)
            assert time.monotonic() - started < 20
    finally:
        proxy.close()
        shutil.rmtree(dest, ignore_errors=True)
