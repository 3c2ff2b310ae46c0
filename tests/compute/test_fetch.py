"""Reading disks of real domains through volume streams: raw, qcow2, backing chains, and the
disks the driver must refuse. Every result is compared with the original as a guest sees it."""

from __future__ import annotations

import filecmp
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostimage.compute.libvirt_host import LibvirtHost
from hostimage.compute.model import DiskNotReadable, DomainDisk
from hostimage.imaging.inspector import inspect
from tests.libvirt_env import (
    MIB,
    Daemon,
    DiskSpec,
    Domains,
    Pool,
    make_chain,
    make_ext4,
    same_content,
    scratch_dir,
    to_qcow2,
)


@pytest.fixture(params=["local", "tcp"])
def uri(request: pytest.FixtureRequest, libvirt_daemon: Daemon) -> str:
    return libvirt_daemon.uri if request.param == "local" else libvirt_daemon.require_tcp()


@pytest.fixture()
def outside() -> Iterator[Path]:
    """A directory that is no pool."""
    path = scratch_dir("outside")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Recorder:
    def __init__(self, fail_after: int | None = None) -> None:
        self.checks = 0
        self.fractions: list[float] = []
        self.fail_after = fail_after

    def check(self) -> None:
        self.checks += 1
        if self.fail_after is not None and self.checks > self.fail_after:
            raise KeyboardInterrupt("taken away")  # any exception: it must propagate as is

    def progress(self, fraction: float) -> None:
        self.fractions.append(fraction)


def _fetch(
    host: LibvirtHost, disk: DomainDisk, dest: Path, rec: Recorder | None = None
) -> tuple[Path, str]:
    rec = rec or Recorder()
    path, fmt = host.fetch_disk(disk, dest, check=rec.check, progress=rec.progress)
    assert path.parent == dest and path.is_file()
    assert rec.fractions == sorted(rec.fractions) and rec.fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in rec.fractions)
    inspect(path, fmt)  # no backing file, nothing unsafe
    return path, fmt


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_raw_and_qcow2_volumes(
    uri: str, libvirt_pool: Pool, libvirt_domains: Domains, outside: Path
) -> None:
    pool = libvirt_pool
    sys_raw = pool.add(
        "sys.raw", make_ext4(pool.path / ".s", {"etc/hostname": b"alpha\n"}, 32 * MIB)
    )
    # A large hole at the end: the download keeps it a hole.
    with open(sys_raw, "r+b") as handle:
        handle.truncate(128 * MIB)
    data = make_ext4(pool.path / ".d", {"data.bin": bytes(range(256)) * 4096}, 16 * MIB)
    data_q = pool.add("data.qcow2", to_qcow2(data, pool.path / ".d.qcow2"))
    data.unlink()
    before = {p.name: _digest(p) for p in (sys_raw, data_q)}
    uuid, _ = libvirt_domains.define(
        [
            DiskSpec("vda", "raw", pool=pool.name, volume="sys.raw"),
            DiskSpec("vdb", "qcow2", path=data_q),
        ]
    )
    with LibvirtHost(uri) as host:
        vda, vdb = host.domain(uuid).disks
        assert vda.size == 128 * MIB
        got_a, fmt_a = _fetch(host, vda, outside / "a")
        got_b, fmt_b = _fetch(host, vdb, outside / "b")
    assert (got_a.name, fmt_a) == ("vda.raw", "raw")
    assert (got_b.name, fmt_b) == ("vdb.qcow2", "qcow2")
    assert filecmp.cmp(got_a, sys_raw, shallow=False)
    assert filecmp.cmp(got_b, data_q, shallow=False)  # a single layer comes as it is stored
    assert got_a.stat().st_blocks * 512 < 40 * MIB  # sparse
    assert {p.name: _digest(p) for p in (sys_raw, data_q)} == before  # read-only


def test_fetch_two_layer_chain_is_joined_into_one_file(
    uri: str, libvirt_pool: Pool, libvirt_domains: Domains, outside: Path
) -> None:
    pool = libvirt_pool
    versions = [
        {"etc/hostname": b"base\n", "a.txt": b"1" * 50_000},
        {"etc/hostname": b"top\n", "a.txt": b"2" * 50_000, "b.txt": b"new"},
    ]
    base, top = make_chain(pool.path, "c", versions)
    pool.refresh()
    uuid, _ = libvirt_domains.define([DiskSpec("vda", "qcow2", path=top)])
    rec = Recorder()
    with LibvirtHost(uri) as host:
        (vda,) = host.domain(uuid).disks
        assert (vda.pool, vda.volume) == (pool.name, "c-1.qcow2")
        got, fmt = _fetch(host, vda, outside / "f", rec)
    assert (got.name, fmt) == ("vda.qcow2", "qcow2")
    assert sorted(p.name for p in got.parent.iterdir()) == ["vda.qcow2"]  # layers removed
    assert same_content(got, "qcow2", top, "qcow2")
    assert not same_content(got, "qcow2", base, "qcow2")
    assert rec.checks > 1


def test_three_layer_chain(
    uri: str, libvirt_pool: Pool, libvirt_domains: Domains, outside: Path
) -> None:
    pool = libvirt_pool
    layers = make_chain(pool.path, "t", [{"v": b"1"}, {"v": b"22"}, {"v": b"333", "w": b"x"}])
    pool.refresh()
    uuid, _ = libvirt_domains.define([DiskSpec("vda", "qcow2", pool=pool.name, volume="t-2.qcow2")])
    with LibvirtHost(uri) as host:
        got, fmt = _fetch(host, host.domain(uuid).disks[0], outside / "f")
    assert same_content(got, fmt, layers[-1], "qcow2")


def test_backing_file_outside_any_pool_is_refused(
    uri: str, libvirt_pool: Pool, libvirt_domains: Domains, outside: Path
) -> None:
    _, top = make_chain(outside, "c", [{"a": b"1"}, {"a": b"2"}])
    libvirt_pool.add("top.qcow2", top)  # its backing file stays outside
    uuid, _ = libvirt_domains.define(
        [DiskSpec("vda", "qcow2", path=libvirt_pool.path / "top.qcow2")]
    )
    with LibvirtHost(uri) as host:
        (vda,) = host.domain(uuid).disks
        with pytest.raises(
            DiskNotReadable, match=r"backing file .*c-0\.qcow2, which is not a volume"
        ):
            host.fetch_disk(vda, outside / "f", check=lambda: None, progress=lambda _f: None)


def test_non_volume_disk_is_refused_over_tcp_and_read_locally(
    libvirt_daemon: Daemon, libvirt_domains: Domains, outside: Path
) -> None:
    loose = make_ext4(outside / "loose.raw", {"hello": b"world"}, 8 * MIB)
    _base, top = make_chain(outside, "lc", [{"a": b"1"}, {"a": b"2"}])
    uuid, _ = libvirt_domains.define(
        [DiskSpec("vda", "raw", path=loose), DiskSpec("vdb", "qcow2", path=top)]
    )
    with LibvirtHost(libvirt_daemon.require_tcp()) as host:
        vda, vdb = host.domain(uuid).disks
        assert (vda.pool, vda.size) == (None, 8 * MIB)
        for disk in (vda, vdb):
            with pytest.raises(
                DiskNotReadable, match=r"not a volume of any storage pool on 127\.0\.0\.1"
            ):
                host.fetch_disk(disk, outside / "tcp", check=lambda: None, progress=lambda _f: None)
    with LibvirtHost(libvirt_daemon.uri) as host:
        vda, vdb = host.domain(uuid).disks
        got_a, fmt_a = _fetch(host, vda, outside / "local")
        got_b, fmt_b = _fetch(host, vdb, outside / "local")
    assert (fmt_a, got_a.read_bytes()) == ("raw", loose.read_bytes())
    assert fmt_b == "qcow2" and same_content(got_b, "qcow2", top, "qcow2")


def test_block_network_and_missing_volume_disks_are_refused(
    libvirt_daemon: Daemon, libvirt_pool: Pool, libvirt_domains: Domains, outside: Path
) -> None:
    uuid, _ = libvirt_domains.define(
        [
            DiskSpec("vda", "raw", path="/dev/null", kind="block"),
            DiskSpec("vdb", "raw", kind="network"),
            DiskSpec("vdc", "raw", pool=libvirt_pool.name, volume="gone.raw"),
        ]
    )
    with LibvirtHost(libvirt_daemon.uri) as host:
        vda, vdb, vdc = host.domain(uuid).disks
        assert (vda.kind, vdb.kind, vdc.kind) == ("block", "network", "volume")
        assert (vdc.size, vdc.pool, vdc.volume) == (None, libvirt_pool.name, "gone.raw")
        for disk, reason in (
            (vda, "block device /dev/null"),
            (vdb, "network disk"),
            (vdc, f"volume gone.raw of pool {libvirt_pool.name} is not found"),
        ):
            with pytest.raises(DiskNotReadable, match=reason):
                host.fetch_disk(disk, outside, check=lambda: None, progress=lambda _f: None)


def test_check_aborts_the_stream_and_the_connection_stays_usable(
    uri: str, libvirt_pool: Pool, libvirt_domains: Domains, outside: Path
) -> None:
    pool = libvirt_pool
    raw = pool.path / ".big"
    with open(raw, "wb") as handle:
        for _ in range(24):
            handle.write(hashlib.sha512(handle.tell().to_bytes(8, "big")).digest() * (MIB // 64))
    pool.add("big.raw", raw)
    uuid, _ = libvirt_domains.define([DiskSpec("vda", "raw", pool=pool.name, volume="big.raw")])
    with LibvirtHost(uri) as host:
        (vda,) = host.domain(uuid).disks
        rec = Recorder(fail_after=5)
        with pytest.raises(KeyboardInterrupt, match="taken away"):
            host.fetch_disk(vda, outside / "x", check=rec.check, progress=rec.progress)
        assert rec.checks == 6
        got, _ = _fetch(host, vda, outside / "y")
    assert filecmp.cmp(got, pool.path / "big.raw", shallow=False)
