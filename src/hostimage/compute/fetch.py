"""Reading one disk of a libvirt domain into a local file (see
:meth:`hostimage.compute.libvirt_host.LibvirtHost.fetch_disk`): volumes and their backing
volumes through streams, files directly when the host is this machine, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hostimage.compute import domain_xml, layers, streams
from hostimage.compute.model import DiskNotReadable, DomainDisk
from hostimage.imaging.inspector import FormatError, inspect
from hostimage.imaging.qemu_img import QemuImgError

if TYPE_CHECKING:
    from hostimage.compute.libvirt_host import LibvirtHost

MAX_CHAIN_DEPTH = 16
FETCHABLE_FORMATS = frozenset({"raw", "qcow2", "vmdk", "vhd", "vhdx"})
# Of a multi-layer fetch, the share of progress that downloading takes (joining the rest).
_DOWNLOAD_SHARE = 0.9


def fetch_disk(
    host: LibvirtHost,
    disk: DomainDisk,
    dest: Path,
    check: Callable[[], None],
    progress: Callable[[float], None],
) -> tuple[Path, str]:
    """The body of ``LibvirtHost.fetch_disk``; libvirt errors propagate raw."""
    dest.mkdir(parents=True, exist_ok=True)
    label = f"Disk {disk.target}"
    vol = host.volume_for(disk.kind, disk.path, disk.pool, disk.volume)
    if vol is None:
        return _fetch_direct(host, disk, dest, check, progress)
    chain = _volume_chain(host, vol, disk.format, label)
    total = sum(size for _, _, size in chain)
    meter = streams.Meter(check, progress, total, span=_DOWNLOAD_SHARE if len(chain) > 1 else 1.0)
    files: list[tuple[Path, str]] = []
    for depth, (layer, fmt, _size) in enumerate(chain):
        suffix = f".layer{depth}" if len(chain) > 1 else ""
        target = dest / f"{disk.target}{suffix}.{fmt}"
        streams.download(host.conn, layer, target, meter)
        files.append((target, fmt))
    if len(files) == 1:
        meter.report(1.0)
        return files[0]
    flat = dest / f"{disk.target}.qcow2"
    _join(host, files, flat, label)
    meter.report(1.0)
    return flat, "qcow2"


def _volume_chain(
    host: LibvirtHost, vol: Any, fmt: str | None, label: str
) -> list[tuple[Any, str, int]]:
    """The volume and its backing volumes, top first, each with its format and the number
    of bytes its download gives. The top layer's format is the one the domain uses; the
    others are what their child's header names."""
    chain = []
    wanted = fmt
    while True:
        desc = domain_xml.parse_volume(vol.XMLDesc(0))
        layer_fmt = wanted or desc.format or "raw"
        name = f"volume {vol.name()} of pool {vol.storagePoolLookupByVolume().name()}"
        if layer_fmt not in FETCHABLE_FORMATS:
            raise DiskNotReadable(f"{label}: {name} is in format {layer_fmt}, not readable.")
        size = desc.physical or vol.info()[2] or desc.capacity or 0
        chain.append((vol, layer_fmt, size))
        if layer_fmt != "qcow2" or not desc.backing_path:
            return chain
        if len(chain) >= MAX_CHAIN_DEPTH:
            raise DiskNotReadable(
                f"{label}: the backing chain is deeper than {MAX_CHAIN_DEPTH} layers."
            )
        parent = host.volume_by_path(desc.backing_path)
        if parent is None:
            raise DiskNotReadable(
                f"{label}: {name} has the backing file {desc.backing_path}, which is not a "
                f"volume of any storage pool on {host.where}; the service reads disks only "
                "through pool volumes."
            )
        vol, wanted = parent, desc.backing_format


def _join(host: LibvirtHost, files: list[tuple[Path, str]], flat: Path, label: str) -> None:
    """Join downloaded layers (top first) into ``flat``, one qcow2 file without backing, and
    remove the layer files."""
    try:
        # The bottom layer has no backing file: the full inspector vouches for it. The
        # others are checked for what could make qemu-img open files of this machine,
        # then pointed at their downloaded parents.
        bottom, bottom_fmt = files[-1]
        inspect(bottom, bottom_fmt)
        for index, (path, _fmt) in enumerate(files[:-1]):
            layers.check_layer_header(path, f"{label}: layer {index}")
            parent, parent_fmt = files[index + 1]
            layers.rebase_unsafe(path, parent, parent_fmt, host.qemu_limits)
        top, top_fmt = files[0]
        layers.check_chain_inside(top, top_fmt, flat.parent, host.qemu_limits)
        layers.flatten(top, top_fmt, flat, host.qemu_limits)
    except FormatError as exc:
        raise DiskNotReadable(f"{label}: the bottom layer is refused: {exc}") from None
    except QemuImgError as exc:
        raise DiskNotReadable(f"{label}: joining the layers failed: {exc}") from None
    for path, _ in files:
        path.unlink(missing_ok=True)


def _fetch_direct(
    host: LibvirtHost,
    disk: DomainDisk,
    dest: Path,
    check: Callable[[], None],
    progress: Callable[[float], None],
) -> tuple[Path, str]:
    """A disk that is no volume: copied (or, with a backing chain, flattened) when the host
    is this machine; refused otherwise."""
    label = f"Disk {disk.target}"
    if disk.kind == "network":
        raise DiskNotReadable(f"{label} is a network disk, which the service does not read.")
    if disk.kind == "volume":
        raise DiskNotReadable(
            f"{label}: volume {disk.volume} of pool {disk.pool} is not found on {host.where} "
            "(or its pool is not active)."
        )
    if disk.kind not in ("file", "block") or not disk.path:
        raise DiskNotReadable(f"{label} ({disk.kind}) has no file the service can read.")
    if disk.kind == "block":
        raise DiskNotReadable(
            f"{label} is the block device {disk.path}, not a volume of any storage pool on "
            f"{host.where}; the service reads block devices only as pool volumes."
        )
    if not host.is_local():
        raise DiskNotReadable(
            f"{label} ({disk.path}) is not a volume of any storage pool on {host.where}; "
            "the service reads remote disks only through pool volumes."
        )
    source = Path(disk.path)
    fmt = disk.format or "raw"
    if fmt not in FETCHABLE_FORMATS:
        raise DiskNotReadable(f"{label} is in format {fmt}, which the service does not read.")
    try:
        chain = layers.chain_files(source, fmt, host.qemu_limits)
    except (QemuImgError, OSError) as exc:
        raise DiskNotReadable(f"{label} ({disk.path}) cannot be read: {exc}") from None
    if any(layers.data_file(entry) for entry in chain):
        raise DiskNotReadable(f"{label} keeps its data in an external data file.")
    meter = streams.Meter(check, progress, source.stat().st_size)
    if len(chain) == 1:
        target = dest / f"{disk.target}.{fmt}"
        streams.copy_sparse(source, target, meter)
    else:
        check()
        target, fmt = dest / f"{disk.target}.qcow2", "qcow2"
        try:
            layers.flatten(source, disk.format or "raw", target, host.qemu_limits)
        except QemuImgError as exc:
            raise DiskNotReadable(f"{label}: flattening its backing chain failed: {exc}") from None
    meter.report(1.0)
    return target, fmt
