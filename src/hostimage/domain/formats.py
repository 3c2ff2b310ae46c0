"""Disk formats and host-image property vocabularies (SPEC §3)."""

from __future__ import annotations

from enum import StrEnum


class DiskFormat(StrEnum):
    QCOW2 = "qcow2"
    RAW = "raw"
    VMDK = "vmdk"
    VHD = "vhd"
    VHDX = "vhdx"
    ISO = "iso"


# Formats a format copy (多云镜像) may be converted into.
CONVERTIBLE_FORMATS: frozenset[DiskFormat] = frozenset(
    {DiskFormat.QCOW2, DiskFormat.RAW, DiskFormat.VMDK, DiskFormat.VHD}
)


class OsType(StrEnum):
    LINUX = "Linux"
    WINDOWS = "Windows"
    MACOS = "macOS"
    VMWARE = "VMware"
    OTHER = "Other"


class DiskDriver(StrEnum):
    AUTO = "auto"
    VIRTIO = "virtio"
    SCSI = "scsi"
    PVSCSI = "pvscsi"
    IDE = "ide"
    SATA = "sata"


class NetDriver(StrEnum):
    AUTO = "auto"
    VIRTIO = "virtio"
    E1000 = "e1000"
    VMXNET3 = "vmxnet3"


class BootMode(StrEnum):
    BIOS = "bios"
    UEFI = "uefi"


def resolve_drivers(os_type: str | None, hypervisor: str | None) -> tuple[str, str]:
    """Resolve 'auto' drivers by OS and platform: Linux on KVM gets scsi + virtio (F11)."""
    hv = (hypervisor or "kvm").lower()
    if hv == "esxi":
        return ("pvscsi", "vmxnet3")
    if os_type == OsType.WINDOWS:
        return ("ide", "e1000")
    return ("scsi", "virtio")


def mib_ceil(nbytes: int | None) -> int | None:
    """Bytes → MiB, rounded up (``min_disk_mb``)."""
    if nbytes is None:
        return None
    return -(-nbytes // (1024 * 1024))
