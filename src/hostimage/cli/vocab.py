"""Choices offered on the command line (the API's vocabularies, SPEC §3 and §5).

The shared vocabularies come from the pure ``domain`` package (no I/O, nothing of the server);
the rest are the list endpoint's sort keys and the file-name extensions of disk formats.
"""

from __future__ import annotations

from enum import StrEnum

from hostimage.domain.formats import BootMode, DiskDriver, DiskFormat, NetDriver, OsType
from hostimage.domain.oplog import LogAction
from hostimage.domain.sharing import ShareScope
from hostimage.domain.status import ImageStatus
from hostimage.domain.tenancy import View

__all__ = [
    "EXTENSION_FORMATS",
    "BootMode",
    "ConvertFormat",
    "DiskDriver",
    "DiskFormat",
    "ImageStatus",
    "LogAction",
    "NetDriver",
    "Order",
    "OsType",
    "ShareScope",
    "SortKey",
    "View",
]


class ConvertFormat(StrEnum):
    """Formats a format copy (多云镜像) can be made in."""

    QCOW2 = "qcow2"
    RAW = "raw"
    VMDK = "vmdk"
    VHD = "vhd"


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
