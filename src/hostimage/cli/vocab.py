"""Choices offered on the command line (the API's vocabularies, SPEC §3 and §5)."""

from __future__ import annotations

from enum import StrEnum


class View(StrEnum):
    """List views: project view, 域管理后台 (domain), 管理后台 (system)."""

    PROJECT = "project"
    DOMAIN = "domain"
    SYSTEM = "system"


class OsType(StrEnum):
    """Operating system types."""

    LINUX = "Linux"
    WINDOWS = "Windows"
    MACOS = "macOS"
    VMWARE = "VMware"
    OTHER = "Other"


class DiskDriver(StrEnum):
    """Disk bus drivers."""

    AUTO = "auto"
    VIRTIO = "virtio"
    SCSI = "scsi"
    PVSCSI = "pvscsi"
    IDE = "ide"
    SATA = "sata"


class NetDriver(StrEnum):
    """NIC models."""

    AUTO = "auto"
    VIRTIO = "virtio"
    E1000 = "e1000"
    VMXNET3 = "vmxnet3"


class BootMode(StrEnum):
    """Firmware."""

    BIOS = "bios"
    UEFI = "uefi"


class DiskFormat(StrEnum):
    """Disk image formats."""

    QCOW2 = "qcow2"
    RAW = "raw"
    VMDK = "vmdk"
    VHD = "vhd"
    VHDX = "vhdx"
    ISO = "iso"


class ConvertFormat(StrEnum):
    """Formats a format copy (多云镜像) can be made in."""

    QCOW2 = "qcow2"
    RAW = "raw"
    VMDK = "vmdk"
    VHD = "vhd"


class ImageStatus(StrEnum):
    """Statuses of host images and images."""

    QUEUED = "queued"
    SAVING = "saving"
    ACTIVE = "active"
    KILLED = "killed"
    DELETING = "deleting"


class ShareScope(StrEnum):
    """Stored share scopes."""

    NONE = "none"
    PROJECT = "project"
    DOMAIN = "domain"
    SYSTEM = "system"


class SortKey(StrEnum):
    """Sort keys of the host-image list."""

    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    NAME = "name"
    SIZE = "size"
    STATUS = "status"
    OS_TYPE = "os_type"
    DISK_FORMAT = "disk_format"
    SHARE_SCOPE = "share_scope"


class Order(StrEnum):
    """Sort order."""

    ASC = "asc"
    DESC = "desc"


class LogAction(StrEnum):
    """Operation-log actions."""

    CREATE = "create"
    UPDATE = "update"
    SHARE = "share"
    UNSHARE = "unshare"
    CHANGE_PROJECT = "change_project"
    SET_PROTECTION = "set_protection"
    DELETE = "delete"
    SAVE = "save"
    CONVERT = "convert"


EXTENSION_FORMATS: dict[str, DiskFormat] = {
    ".qcow2": DiskFormat.QCOW2,
    ".qcow": DiskFormat.QCOW2,
    ".raw": DiskFormat.RAW,
    ".img": DiskFormat.RAW,
    ".vmdk": DiskFormat.VMDK,
    ".vhd": DiskFormat.VHD,
    ".vpc": DiskFormat.VHD,
    ".vhdx": DiskFormat.VHDX,
    ".iso": DiskFormat.ISO,
}
