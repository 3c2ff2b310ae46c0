"""Creating VMs on the real daemon: volumes uploaded through streams, domains defined under
TCG (and UEFI), started, stopped (destroyed after the timeout) and undefined."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hostimage.compute.libvirt_host import LibvirtHost
from hostimage.compute.model import ComputeError, DomainState, NewDomain, VolumeRef
from tests.libvirt_env import (
    MIB,
    Daemon,
    Domains,
    Pool,
    make_ext4,
    same_content,
    scratch_dir,
    to_qcow2,
)


@pytest.fixture(params=["local", "tcp"])
def uri(request: pytest.FixtureRequest, libvirt_daemon: Daemon) -> str:
    return libvirt_daemon.uri if request.param == "local" else libvirt_daemon.require_tcp()


@pytest.fixture()
def work() -> Iterator[Path]:
    path = scratch_dir("work")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _noop() -> None:
    pass


def _images(work: Path) -> tuple[Path, Path]:
    raw = make_ext4(work / "sys.raw", {"etc/hostname": b"made\n", "big": b"z" * 300_000}, 24 * MIB)
    with open(raw, "r+b") as handle:
        handle.truncate(64 * MIB)  # a trailing hole
    return raw, to_qcow2(raw, work / "sys.qcow2")


def test_create_volume_and_read_it_back(uri: str, libvirt_pool: Pool, work: Path) -> None:
    raw, qcow2 = _images(work)
    fractions: list[float] = []
    with LibvirtHost(uri) as host:
        ref_q = host.create_volume(
            libvirt_pool.name, "sys-q", qcow2, "qcow2", check=_noop, progress=fractions.append
        )
        ref_r = host.create_volume(
            libvirt_pool.name, "sys-r", raw, "raw", check=_noop, progress=_noop_f
        )
    assert ref_q == VolumeRef(libvirt_pool.name, "sys-q", str(libvirt_pool.path / "sys-q"))
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    vol = libvirt_pool.volume("sys-q")
    assert vol.info()[1] == 64 * MIB
    assert "<format type='qcow2'/>" in vol.XMLDesc(0)
    assert same_content(Path(ref_q.path), "qcow2", raw, "raw")
    assert Path(ref_r.path).read_bytes() == raw.read_bytes()
    assert Path(ref_r.path).stat().st_blocks * 512 < 32 * MIB  # holes stayed holes


def _noop_f(_fraction: float) -> None:
    pass


def test_create_volume_refuses_a_taken_name_and_cleans_up_after_failure(
    libvirt_daemon: Daemon, libvirt_pool: Pool, work: Path
) -> None:
    _raw, qcow2 = _images(work)
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("stop")

    with LibvirtHost(libvirt_daemon.uri) as host:
        ref = host.create_volume(
            libvirt_pool.name, "a", qcow2, "qcow2", check=_noop, progress=_noop_f
        )
        with pytest.raises(ComputeError, match=f"Creating volume a in pool {libvirt_pool.name}"):
            host.create_volume(
                libvirt_pool.name, "a", qcow2, "qcow2", check=_noop, progress=_noop_f
            )
        assert Path(ref.path).read_bytes() == qcow2.read_bytes()  # the taken one is untouched
        with pytest.raises(RuntimeError, match="stop"):
            host.create_volume(
                libvirt_pool.name, "b", qcow2, "qcow2", check=check, progress=_noop_f
            )
        assert not (libvirt_pool.path / "b").exists()
        libvirt_pool.refresh()
        assert sorted(libvirt_pool.pool.listVolumes()) == ["a"]
        with pytest.raises(ComputeError, match="nope"):
            host.create_volume("nope", "c", qcow2, "qcow2", check=_noop, progress=_noop_f)

        host.delete_volume(ref)
        assert not Path(ref.path).exists()
        host.delete_volume(ref)  # gone: fine
        host.delete_volume(VolumeRef("no-such-pool", "a", "/x"))
        # Same name, another file: not the volume the ref was made for, left alone.
        other = host.create_volume(
            libvirt_pool.name, "a", qcow2, "qcow2", check=_noop, progress=_noop_f
        )
        host.delete_volume(VolumeRef(libvirt_pool.name, "a", "/elsewhere/a"))
        assert Path(other.path).exists()
        # Named without a path: the volume of that name in the pool (what a retried or
        # failed build removes before it knows the path).
        host.delete_volume(VolumeRef(libvirt_pool.name, "a", ""))
        assert not Path(other.path).exists()


def _spec(pool: Pool, refs: tuple[VolumeRef, ...], **kw: object) -> NewDomain:
    base: dict[str, object] = {
        "name": f"{pool.name}-vm",
        "volumes": refs,
        "disk_bus": "virtio",
        "nic_model": "virtio",
        "network": None,
        "memory_mib": 128,
        "metadata": {"server_id": "srv-1"},
    }
    base.update(kw)
    return NewDomain(**base)  # type: ignore[arg-type]


def test_define_start_stop_undefine(
    uri: str, libvirt_pool: Pool, libvirt_domains: Domains, work: Path
) -> None:
    raw, qcow2 = _images(work)
    with LibvirtHost(uri) as host:
        refs = (
            host.create_volume(
                libvirt_pool.name, "d0", qcow2, "qcow2", check=_noop, progress=_noop_f
            ),
            host.create_volume(libvirt_pool.name, "d1", raw, "raw", check=_noop, progress=_noop_f),
        )
        spec = _spec(libvirt_pool, refs, disk_bus="scsi")
        first = host.define_domain(spec)
        libvirt_domains.adopt(first.uuid)
        second = host.define_domain(spec)
        libvirt_domains.adopt(second.uuid)
        assert (first.name, second.name) == (spec.name, f"{spec.name}-2")
        # A fixed UUID (the server's id) is the domain's.
        fixed = "0f3c2a4b-5d6e-4f70-8192-a3b4c5d6e7f8"
        third = host.define_domain(replace(spec, name=f"{spec.name}-fixed", uuid=fixed))
        libvirt_domains.adopt(third.uuid)
        assert third.uuid == fixed
        host.undefine(fixed)
        assert first.state == DomainState.SHUTOFF
        assert first.metadata == {"server_id": "srv-1"}
        assert [(d.target, d.kind, d.format, d.volume, d.size) for d in first.disks] == [
            ("sda", "volume", "qcow2", "d0", 64 * MIB),
            ("sdb", "volume", "raw", "d1", 64 * MIB),
        ]
        xml = host.conn.lookupByUUIDString(first.uuid).XMLDesc(0)
        assert "<domain type='qemu'" in xml  # KVM here cannot run guests: TCG
        host.start(first.uuid)
        host.start(first.uuid)
        assert host.domain(first.uuid).state == DomainState.RUNNING
        started = time.monotonic()
        host.stop(first.uuid, timeout=1.0)  # nothing answers ACPI: destroyed after the timeout
        assert 1.0 <= time.monotonic() - started < 30
        assert host.domain(first.uuid).state == DomainState.SHUTOFF
        host.stop(first.uuid, timeout=1.0)
        host.start(first.uuid)
        host.undefine(first.uuid)  # running: powered off, then undefined
        host.undefine(first.uuid)
        assert first.uuid not in {d.uuid for d in host.domains()}
        assert Path(refs[0].path).exists()  # volumes stay


@pytest.mark.parametrize("bus", ["virtio", "pvscsi", "sata", "ide"])
def test_every_bus_starts(
    bus: str, libvirt_daemon: Daemon, libvirt_pool: Pool, libvirt_domains: Domains, work: Path
) -> None:
    _raw, qcow2 = _images(work)
    with LibvirtHost(libvirt_daemon.uri) as host:
        ref = host.create_volume(
            libvirt_pool.name, "d0", qcow2, "qcow2", check=_noop, progress=_noop_f
        )
        nic = {"pvscsi": "vmxnet3", "ide": "e1000"}.get(bus, "virtio")
        dom = host.define_domain(_spec(libvirt_pool, (ref,), disk_bus=bus, nic_model=nic))
        libvirt_domains.adopt(dom.uuid)
        host.start(dom.uuid)
        assert host.domain(dom.uuid).state == DomainState.RUNNING
        host.stop(dom.uuid, timeout=0)


def test_uefi_domain(uri: str, libvirt_pool: Pool, libvirt_domains: Domains, work: Path) -> None:
    _raw, qcow2 = _images(work)
    with LibvirtHost(uri) as host:
        ref = host.create_volume(
            libvirt_pool.name, "u0", qcow2, "qcow2", check=_noop, progress=_noop_f
        )
        dom = host.define_domain(_spec(libvirt_pool, (ref,), uefi=True))
        libvirt_domains.adopt(dom.uuid)
        raw_dom = host.conn.lookupByUUIDString(dom.uuid)
        assert "<os firmware='efi'>" in raw_dom.XMLDesc(0)
        host.start(dom.uuid)
        assert host.domain(dom.uuid).state == DomainState.RUNNING
        # The firmware libvirt picked when it started the domain: OVMF without secure boot.
        live = raw_dom.XMLDesc(0)
        assert "OVMF" in live and "<nvram" in live and "secboot" not in live
        nvram = live.split("<nvram", 1)[1].split(">", 1)[1].split("<", 1)[0]
        assert Path(nvram).exists()
        host.undefine(dom.uuid)  # with its NVRAM
        assert dom.uuid not in {d.uuid for d in host.domains()}
        assert not Path(nvram).exists()


def test_define_over_a_missing_volume(libvirt_daemon: Daemon, libvirt_pool: Pool) -> None:
    with LibvirtHost(libvirt_daemon.uri) as host, pytest.raises(ComputeError, match="Volume gone"):
        host.define_domain(_spec(libvirt_pool, (VolumeRef(libvirt_pool.name, "gone", "/x"),)))
