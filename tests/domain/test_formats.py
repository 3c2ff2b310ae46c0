"""Disk formats and host-image property vocabularies (SPEC §3, F11), without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostimage.domain.formats import (
    CONVERTIBLE_FORMATS,
    BootMode,
    DiskDriver,
    DiskFormat,
    NetDriver,
    OsType,
    mib_ceil,
    resolve_drivers,
)

MIB = 1024 * 1024


def test_vocabularies_are_the_spec_lists() -> None:
    assert [f.value for f in DiskFormat] == ["qcow2", "raw", "vmdk", "vhd", "vhdx", "iso"]
    assert [o.value for o in OsType] == ["Linux", "Windows", "macOS", "VMware", "Other"]
    assert [d.value for d in DiskDriver] == ["auto", "virtio", "scsi", "pvscsi", "ide", "sata"]
    assert [n.value for n in NetDriver] == ["auto", "virtio", "e1000", "vmxnet3"]
    assert [b.value for b in BootMode] == ["bios", "uefi"]


def test_convertible_formats() -> None:
    # the format copies docs/api.md offers: qcow2, raw, vhd, vmdk; an ISO is never a target
    assert {f.value for f in CONVERTIBLE_FORMATS} == {"qcow2", "raw", "vhd", "vmdk"}
    assert frozenset(DiskFormat) >= CONVERTIBLE_FORMATS
    assert DiskFormat.ISO not in CONVERTIBLE_FORMATS


@pytest.mark.parametrize("hypervisor", [None, "kvm", "KVM", "Kvm"])
def test_linux_on_kvm_gets_scsi_and_virtio(hypervisor: str | None) -> None:
    # F11: "Drivers 'auto' resolve by OS type (Linux on KVM: scsi + virtio)"; no hypervisor
    # given means the built-in compute, which is KVM
    assert resolve_drivers(OsType.LINUX, hypervisor) == ("scsi", "virtio")
    assert resolve_drivers(None, hypervisor) == ("scsi", "virtio")


@pytest.mark.parametrize("os_type", [*OsType, None])
@pytest.mark.parametrize("hypervisor", ["esxi", "ESXi"])
def test_esxi_gets_the_vmware_paravirtual_drivers(os_type: str | None, hypervisor: str) -> None:
    assert resolve_drivers(os_type, hypervisor) == ("pvscsi", "vmxnet3")


def test_windows_on_kvm_gets_drivers_it_has_in_the_box() -> None:
    assert resolve_drivers(OsType.WINDOWS, "kvm") == ("ide", "e1000")
    assert resolve_drivers(OsType.WINDOWS, None) == ("ide", "e1000")


@given(
    st.none() | st.sampled_from(list(OsType)) | st.text(max_size=12),
    st.none() | st.sampled_from(["kvm", "esxi", "ESXi", "xen", ""]) | st.text(max_size=12),
)
def test_resolved_drivers_are_always_concrete(os_type: str | None, hypervisor: str | None) -> None:
    disk, net = resolve_drivers(os_type, hypervisor)
    assert disk in {d.value for d in DiskDriver} - {"auto"}
    assert net in {n.value for n in NetDriver} - {"auto"}


def test_mib_ceil_examples() -> None:
    assert mib_ceil(None) is None
    assert mib_ceil(0) == 0
    assert mib_ceil(1) == 1
    assert mib_ceil(MIB - 1) == 1
    assert mib_ceil(MIB) == 1
    assert mib_ceil(MIB + 1) == 2
    assert mib_ceil(10 * 1024 * MIB) == 10 * 1024


@given(st.integers(min_value=0, max_value=2**64))
def test_mib_ceil_is_the_smallest_whole_mib_that_holds_the_bytes(n: int) -> None:
    m = mib_ceil(n)
    assert m is not None
    assert m * MIB >= n
    assert m == 0 or (m - 1) * MIB < n
