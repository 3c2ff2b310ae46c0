"""What the service knows of a hypervisor, its domains and their disks, independent of the
driver that reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ComputeError(Exception):
    """A hypervisor refused or failed an operation; the message is fit for ``status_reason``
    (it names domains, volumes and pools, never the worker's own paths)."""


class HostUnreachable(ComputeError):
    """The host could not be connected to (down, refused, authentication): retrying later may
    succeed."""


class DomainNotFound(ComputeError):
    """The domain is not (or no longer) defined on the host."""


class DiskNotReadable(ComputeError):
    """A disk whose bytes the service cannot read: not a volume of any pool on a remote
    host, a network or block device the driver does not stream, an empty CD-ROM…"""


class DomainState(StrEnum):
    RUNNING = "running"  # running, blocked, paused, suspended: not safe to read its disks
    SHUTOFF = "shutoff"  # shut off or crashed


@dataclass(frozen=True)
class HostFacts:
    libvirt: str  # "9.0.0"
    hypervisor: str  # "QEMU 7.2.0"
    hostname: str


@dataclass(frozen=True)
class DomainDisk:
    target: str  # "vda"
    bus: str  # "virtio", "scsi", "sata", "ide"…
    kind: str  # the <disk type=…>: "file", "volume", "block", "network"
    format: str | None  # the driver type: "qcow2", "raw"…
    size: int | None  # virtual size in bytes, when the host can tell
    path: str | None = None  # the source file or device on the host
    pool: str | None = None  # the pool and volume holding it, when it is a volume
    volume: str | None = None


@dataclass(frozen=True)
class DomainInfo:
    uuid: str
    name: str
    state: DomainState
    disks: tuple[DomainDisk, ...] = ()  # device="disk" only, in target order (vda, vdb, sda…)
    # What the service wrote under its XML namespace when it defined the domain (else empty).
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeRef:
    pool: str
    name: str
    path: str  # the volume's key/path on the host


@dataclass(frozen=True)
class NewDomain:
    """A domain to define over volumes the service created."""

    name: str  # wanted name; the driver makes it unique on the host
    volumes: tuple[VolumeRef, ...]  # in disk order: the first is the system disk
    disk_bus: str  # the resolved disk driver: virtio, scsi, sata, ide, pvscsi…
    nic_model: str  # the resolved network driver: virtio, e1000, vmxnet3…
    network: str | None  # a libvirt network name; None gives user-mode networking
    uefi: bool = False
    vcpus: int = 1
    memory_mib: int = 1024
    metadata: dict[str, str] = field(default_factory=dict)  # written under our namespace
    # A fixed domain UUID (the server's id): a retried build finds what an earlier run defined.
    uuid: str | None = None
