"""The libvirt driver: one connection to a libvirt host, its domains and disks, the bytes of
its volumes (only through storage-volume streams) and the VMs the service defines on it.

Every libvirt failure leaves here as a :class:`~hostimage.compute.model.ComputeError`:
:class:`HostUnreachable` when the connection cannot be opened or is lost, DomainNotFound for
a domain that is gone, ComputeError with libvirt's reason otherwise.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import libvirt

from hostimage.compute import domain_xml, fetch, streams
from hostimage.compute.model import (
    ComputeError,
    DomainDisk,
    DomainInfo,
    DomainNotFound,
    DomainState,
    HostFacts,
    HostUnreachable,
    NewDomain,
    VolumeRef,
)
from hostimage.imaging.limits import Limits
from hostimage.imaging.qemu_img import DEFAULT_LIMITS
from hostimage.imaging.qemu_img import info as qemu_info

# Errors that mean the connection itself is gone, not that the request was refused.
_LOST_CONNECTION = frozenset(
    code
    for code in (
        getattr(libvirt, "VIR_ERR_NO_CONNECT", None),
        getattr(libvirt, "VIR_ERR_RPC", None),
        getattr(libvirt, "VIR_ERR_AUTH_FAILED", None),
    )
    if code is not None
)
_SHUTOFF_STATES = frozenset({libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED})
_setup_lock = threading.Lock()
_registered = False
_loop_pid: int | None = None
# virsh's defaults: a peer silent for about 30 s is taken as gone.
KEEPALIVE = (5, 6)


def _prepare_libvirt() -> None:
    """Once per process: silence libvirt's own printing of errors (they are raised as
    exceptions) and run its event loop in a daemon thread, which keepalive needs: without
    it, a host that vanishes mid-transfer (powered off, network cut) leaves a read blocked
    forever. After a fork the child starts its own loop thread."""
    global _registered, _loop_pid
    with _setup_lock:
        if not _registered:
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            libvirt.virEventRegisterDefaultImpl()
            _registered = True
        if _loop_pid != os.getpid():
            threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
            _loop_pid = os.getpid()


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


class LibvirtHost:
    """A connection to the libvirt host at ``uri``, opened by ``with`` and closed after it.

    ``virt_type`` forces the domain type of new domains (``kvm`` or ``qemu``); by default KVM
    is used when the host offers a KVM that can run guests, TCG otherwise. ``qemu_limits``
    bound the local qemu-img runs that join fetched layers. ``keepalive`` is ``(interval,
    count)``: after ``interval * (count + 1)`` seconds without an answer the connection is
    closed and the call waiting on it fails with HostUnreachable.
    """

    def __init__(
        self,
        uri: str,
        *,
        virt_type: str | None = None,
        qemu_limits: Limits = DEFAULT_LIMITS,
        keepalive: tuple[int, int] | None = KEEPALIVE,
    ) -> None:
        self.uri = uri
        self.keepalive = keepalive
        self.virt_type = virt_type
        self.qemu_limits = qemu_limits
        self._conn: Any = None
        self._pools_refreshed = False

    # -- connection ---------------------------------------------------------------------

    def __enter__(self) -> LibvirtHost:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connect; raises HostUnreachable with libvirt's reason when that fails."""
        _prepare_libvirt()
        try:
            self._conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise HostUnreachable(f"Cannot connect to {self.where}: {_message(exc)}") from None
        if self.keepalive is not None:
            # Drivers without a daemon (test://) have no keepalive: nothing to lose there.
            with contextlib.suppress(libvirt.libvirtError):
                self._conn.setKeepAlive(*self.keepalive)

    def close(self) -> None:
        """Close the connection (idempotent; errors closing a dead connection are ignored)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    @property
    def conn(self) -> Any:
        """The open ``virConnect``; RuntimeError outside the ``with`` block."""
        if self._conn is None:
            raise RuntimeError("LibvirtHost is used outside its with block.")
        return self._conn

    def is_local(self) -> bool:
        """True when the URI names no remote host (``qemu:///system``, ``qemu:///session``):
        then the service runs beside the hypervisor and may read its files directly."""
        parts = urlsplit(self.uri)
        return not parts.netloc and "+ssh" not in parts.scheme and "+tls" not in parts.scheme

    @property
    def where(self) -> str:
        """How messages name this host: the URI's host part, or "the local host"."""
        return urlsplit(self.uri).hostname or "the local host"

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        try:
            yield
        except libvirt.libvirtError as exc:
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: libvirt.libvirtError) -> ComputeError:
        code = exc.get_error_code()
        text = f"{what} on {self.where} failed: {_message(exc)}"
        if code == libvirt.VIR_ERR_NO_DOMAIN:
            return DomainNotFound(text)
        if code in _LOST_CONNECTION or exc.get_error_domain() == libvirt.VIR_FROM_RPC:
            return HostUnreachable(text)
        return ComputeError(text)

    # -- facts and domains --------------------------------------------------------------

    def facts(self) -> HostFacts:
        """The libvirt version ("9.0.0"), the hypervisor and its version ("QEMU 7.2.0") and
        the host's name."""
        with self._translate("Reading the host's versions"):
            conn = self.conn
            return HostFacts(
                libvirt=_version(conn.getLibVersion()),
                hypervisor=f"{conn.getType()} {_version(conn.getVersion())}",
                hostname=conn.getHostname(),
            )

    def domains(self) -> list[DomainInfo]:
        """Every defined domain, running or not, with its disks (see :meth:`domain`); a domain
        that disappears while it is listed is left out."""
        with self._translate("Listing domains"):
            found = []
            for dom in self.conn.listAllDomains(0):
                try:
                    found.append(self._info(dom))
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            return sorted(found, key=lambda d: (d.name, d.uuid))

    def domain(self, uuid: str) -> DomainInfo:
        """The domain with this UUID: its state (shut off or crashed → SHUTOFF, anything else
        → RUNNING) and its ``device='disk'`` disks in the order of
        :func:`~hostimage.compute.domain_xml.sort_disks`, each with its virtual size and,
        when its file is a volume of a pool, that pool and volume. DomainNotFound if none."""
        with self._translate(f"Reading domain {uuid}"):
            return self._info(self._lookup(uuid))

    def _lookup(self, uuid: str) -> Any:
        try:
            return self.conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                raise DomainNotFound(f"No domain {uuid} on {self.where}.") from None
            raise

    def _info(self, dom: Any) -> DomainInfo:
        state = dom.state()[0]
        xml = dom.XMLDesc(0)
        return DomainInfo(
            uuid=dom.UUIDString(),
            name=dom.name(),
            state=DomainState.SHUTOFF if state in _SHUTOFF_STATES else DomainState.RUNNING,
            disks=tuple(self._disk(dom, d) for d in domain_xml.parse_disks(xml)),
            metadata=domain_xml.parse_metadata(xml),
        )

    def _disk(self, dom: Any, disk: domain_xml.DiskXml) -> DomainDisk:
        vol = self.volume_for(disk.kind, disk.path, disk.pool, disk.volume)
        path, pool, volume, size = disk.path, disk.pool, disk.volume, None
        if vol is not None:
            path = vol.path()
            pool = vol.storagePoolLookupByVolume().name()
            volume = vol.name()
            size = vol.info()[1]
        elif disk.kind in ("file", "block") and disk.path:
            with contextlib.suppress(libvirt.libvirtError):
                size = dom.blockInfo(disk.target, 0)[0] or None
        return DomainDisk(
            target=disk.target,
            bus=disk.bus,
            kind=disk.kind,
            format=disk.format,
            size=size,
            path=path,
            pool=pool,
            volume=volume,
        )

    def volume_for(
        self, kind: str, path: str | None, pool: str | None, volume: str | None
    ) -> Any | None:
        """The ``virStorageVol`` holding a disk (named by pool and volume, or a file or block
        device whose path is a volume of an active pool), or None when there is none."""
        if pool and volume:
            try:
                return self.conn.storagePoolLookupByName(pool).storageVolLookupByName(volume)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in (
                    libvirt.VIR_ERR_NO_STORAGE_POOL,
                    libvirt.VIR_ERR_NO_STORAGE_VOL,
                ):
                    raise
                return None
        if kind not in ("file", "block") or not path:
            return None
        return self.volume_by_path(path)

    def volume_by_path(self, path: str) -> Any | None:
        """The volume of an active pool at ``path`` (pools refreshed once if it is not
        found at first), or None."""
        for attempt in range(2):
            try:
                return self.conn.storageVolLookupByPath(path)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
            if attempt == 0 and not self._refresh_pools():
                break
        return None

    def _refresh_pools(self) -> bool:
        """Refresh every active pool once per connection (a file copied into a pool's
        directory becomes a volume only then); False when that was already done."""
        if self._pools_refreshed:
            return False
        self._pools_refreshed = True
        for pool in self.conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
            with contextlib.suppress(libvirt.libvirtError):  # a pool busy with a job
                pool.refresh(0)
        return True

    # -- reading disks ------------------------------------------------------------------

    def fetch_disk(
        self,
        disk: DomainDisk,
        dest: Path,
        *,
        check: Callable[[], None],
        progress: Callable[[float], None],
    ) -> tuple[Path, str]:
        """Bring the guest-visible content of ``disk`` into the directory ``dest`` (created if
        needed) and return ``(file, format)``: a file with no backing file, in one of the
        formats the inspector accepts.

        A volume (named by pool and volume, or whose path is a pool's volume) is downloaded
        through a sparse stream; if it has a backing store, every layer is downloaded the
        same way (each must itself be a volume) and the layers are joined locally into one
        qcow2 file. A disk that is no volume is copied directly when the host is local and
        refused (DiskNotReadable) when it is remote; block and network disks that are no
        volume are refused. Nothing on the host is modified. ``check`` runs between chunks
        and may raise to abort (the stream is aborted, the error propagates); ``progress``
        gets the fraction done (0..1).
        """
        with self._translate(f"Reading disk {disk.target}"):
            return fetch.fetch_disk(self, disk, dest, check, progress)

    # -- creating VMs -------------------------------------------------------------------

    def create_volume(
        self,
        pool: str,
        name: str,
        source: Path,
        fmt: str,
        *,
        check: Callable[[], None],
        progress: Callable[[float], None],
    ) -> VolumeRef:
        """Create volume ``name`` in ``pool`` holding the bytes of the local image ``source``
        (format ``fmt``, no backing file): capacity is its virtual size, nothing is
        preallocated, and the bytes go up through a sparse stream. On any failure the
        half-made volume is deleted. A taken name is a ComputeError."""
        capacity = qemu_info(source, fmt, limits=self.qemu_limits).virtual_size
        xml = domain_xml.volume_xml(name, capacity, fmt)
        what = f"Creating volume {name} in pool {pool}"
        with self._translate(what):
            vol = self.conn.storagePoolLookupByName(pool).createXML(xml, 0)
        try:
            with self._translate(f"Uploading volume {name} in pool {pool}"):
                meter = streams.Meter(check, progress, source.stat().st_size)
                streams.upload(self.conn, vol, source, meter)
                ref = VolumeRef(pool=pool, name=name, path=vol.path())
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                vol.delete(0)
            raise
        meter.report(1.0)
        return ref

    def delete_volume(self, ref: VolumeRef) -> None:
        """Delete the volume; a volume (or pool) already gone is fine, and so is a volume of
        that name whose path is no longer ``ref.path`` (it is not ours: left alone). With an
        empty ``ref.path`` the volume is deleted by pool and name."""
        with self._translate(f"Deleting volume {ref.name} in pool {ref.pool}"):
            vol = self.volume_for("volume", None, ref.pool, ref.name)
            # Without a path the caller names a volume by the name it gave it.
            if vol is None or (ref.path and ref.path not in (vol.path(), vol.key())):
                return
            try:
                vol.delete(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise

    def define_domain(self, spec: NewDomain) -> DomainInfo:
        """Define (not start) a persistent domain over the spec's volumes, named ``spec.name``
        or, when that is taken on the host, ``name-2``, ``name-3``…; see
        :func:`~hostimage.compute.domain_xml.domain_xml` for its shape. KVM when the host
        has a working KVM (or ``virt_type`` says so), TCG otherwise."""
        with self._translate(f"Defining domain {spec.name}"):
            formats = [self._volume_format(ref) for ref in spec.volumes]
            virt_type = self.virt_type or self._virt_type()
            taken = {dom.name() for dom in self.conn.listAllDomains(0)}
            for attempt in range(1, 1000):
                name = spec.name if attempt == 1 else f"{spec.name}-{attempt}"
                if name in taken:
                    continue
                xml = domain_xml.domain_xml(spec, name, virt_type, formats)
                try:
                    dom = self.conn.defineXML(xml)
                except libvirt.libvirtError as exc:
                    # Another client took the name meanwhile: try the next one.
                    if exc.get_error_code() in (
                        libvirt.VIR_ERR_OPERATION_FAILED,
                        libvirt.VIR_ERR_DOM_EXIST,
                    ) and "already" in _message(exc):
                        taken.add(name)
                        continue
                    raise
                return self._info(dom)
        raise ComputeError(f"No free domain name like {spec.name} on {self.where}.")

    def _volume_format(self, ref: VolumeRef) -> str:
        vol = self.volume_for("volume", None, ref.pool, ref.name)
        if vol is None:
            raise ComputeError(f"Volume {ref.name} of pool {ref.pool} is gone on {self.where}.")
        return domain_xml.parse_volume(vol.XMLDesc(0)).format or "raw"

    def _virt_type(self) -> str:
        if not domain_xml.offers_kvm(self.conn.getCapabilities()):
            return "qemu"
        try:
            caps = self.conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
        except libvirt.libvirtError:
            return "qemu"
        return "kvm" if domain_xml.kvm_usable(caps) else "qemu"

    # -- power --------------------------------------------------------------------------

    def start(self, uuid: str) -> None:
        """Start the domain; one already running is fine."""
        with self._translate(f"Starting domain {uuid}"):
            dom = self._lookup(uuid)
            if dom.isActive():
                return
            try:
                dom.create()
            except libvirt.libvirtError as exc:
                if not (
                    exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and dom.isActive()
                ):
                    raise

    def stop(self, uuid: str, timeout: float) -> None:
        """Ask the guest to shut down (ACPI) and wait up to ``timeout`` seconds, then power
        it off. A domain already off is fine."""
        with self._translate(f"Stopping domain {uuid}"):
            dom = self._lookup(uuid)
            if not dom.isActive():
                return
            with contextlib.suppress(libvirt.libvirtError):
                dom.shutdown()  # refused by a guest without ACPI: the destroy below stops it
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not dom.isActive():
                    return
                time.sleep(0.2)
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if dom.isActive():
                    raise
                del exc

    def undefine(self, uuid: str) -> None:
        """Remove the domain's definition with its UEFI variables (powering it off first if it
        runs); the volumes stay. A domain already gone is fine."""
        with self._translate(f"Undefining domain {uuid}"):
            try:
                dom = self._lookup(uuid)
            except DomainNotFound:
                return
            try:
                if dom.isActive():
                    dom.destroy()
                try:
                    dom.undefineFlags(
                        libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    )
                except libvirt.libvirtError as exc:
                    # A driver without UEFI variables or saved states refuses those flags.
                    if exc.get_error_code() not in (
                        libvirt.VIR_ERR_INVALID_ARG,
                        libvirt.VIR_ERR_NO_SUPPORT,
                    ):
                        raise
                    dom.undefine()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise


def _version(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, micro = divmod(rest, 1_000)
    return f"{major}.{minor}.{micro}"


def _message(exc: libvirt.libvirtError) -> str:
    return (exc.get_error_message() or str(exc)).strip()
