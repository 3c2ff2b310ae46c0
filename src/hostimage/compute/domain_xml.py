"""libvirt's XML, read and written: a domain's disks and our metadata, a volume's format and
backing store, a new volume, a new domain, and whether a host's KVM can run guests.

Pure functions over strings; nothing here talks to a host.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from hostimage.compute.model import ComputeError, NewDomain

NAMESPACE = "https://hostimage.dev/xmlns/domain/1"
_NS_PREFIX = "hostimage"

# Format names: ours ↔ libvirt's (libvirt and QEMU call a VHD "vpc").
_TO_LIBVIRT = {"vhd": "vpc"}
_FROM_LIBVIRT = {"vpc": "vhd"}


def format_from_libvirt(name: str | None) -> str | None:
    """A libvirt/QEMU format name in our vocabulary (``vpc`` → ``vhd``); None stays None."""
    if not name:
        return None
    return _FROM_LIBVIRT.get(name, name)


def format_to_libvirt(name: str) -> str:
    """One of our format names as libvirt and QEMU spell it (``vhd`` → ``vpc``)."""
    return _TO_LIBVIRT.get(name, name)


@dataclass(frozen=True)
class DiskXml:
    """One ``<disk device='disk'>`` of a domain, as its XML states it."""

    target: str
    bus: str
    kind: str  # file, volume, block, network, dir…
    format: str | None  # our vocabulary
    path: str | None  # source file or dev
    pool: str | None
    volume: str | None
    protocol: str | None  # network disks: rbd, iscsi, nbd…
    boot_order: int | None


_TARGET = re.compile(r"^([a-z]*?)([a-z]+)$")


def _target_parts(target: str) -> tuple[str, str]:
    # vda → (vd, a); sdaa → (sd, aa); xvdb → (xvd, b). libvirt's targets are a two- or
    # three-letter bus prefix followed by the letters a…z, aa…
    for prefix in ("xvd", "vd", "sd", "hd", "ub", "fd"):
        if target.startswith(prefix) and target[len(prefix) :].isalpha():
            return prefix, target[len(prefix) :]
    match = _TARGET.match(target)
    return (match.group(1), match.group(2)) if match else (target, "")


def sort_disks(disks: list[DiskXml]) -> list[DiskXml]:
    """Disks in the order the service numbers them (the first is the system disk).

    A disk with a per-device ``<boot order>`` comes first, lowest order first: that is the
    disk the domain boots from. The others follow by bus prefix, in the order each prefix
    first appears in the XML (vd…, then sd… if a virtio disk came first), and within a prefix
    in natural order: vda < vdb < … < vdz < vdaa.
    """
    prefixes: dict[str, int] = {}
    for disk in disks:
        prefixes.setdefault(_target_parts(disk.target)[0], len(prefixes))

    def key(disk: DiskXml) -> tuple[int, int, int, int, str]:
        prefix, letters = _target_parts(disk.target)
        booted = 0 if disk.boot_order is not None else 1
        return (booted, disk.boot_order or 0, prefixes[prefix], len(letters), letters)

    return sorted(disks, key=key)


def parse_disks(domain_xml: str) -> list[DiskXml]:
    """The domain's ``device='disk'`` disks (CD-ROMs, floppies and LUNs left out), sorted as
    :func:`sort_disks` says."""
    root = ET.fromstring(domain_xml)
    disks = []
    for el in root.findall("./devices/disk"):
        if el.get("device", "disk") != "disk":
            continue
        target = el.find("target")
        if target is None or not target.get("dev"):
            continue
        dev = str(target.get("dev"))
        driver = el.find("driver")
        source = el.find("source")
        boot = el.find("boot")
        kind = el.get("type", "file")
        path = None
        if source is not None:
            path = source.get("file") if kind == "file" else source.get("dev")
            if kind == "dir":
                path = source.get("dir")
        order = boot.get("order") if boot is not None else None
        disks.append(
            DiskXml(
                target=dev,
                bus=target.get("bus") or _bus_of(dev),
                kind=kind,
                format=format_from_libvirt(driver.get("type") if driver is not None else None),
                path=path or None,
                pool=source.get("pool") if source is not None and kind == "volume" else None,
                volume=source.get("volume") if source is not None and kind == "volume" else None,
                protocol=source.get("protocol") if source is not None else None,
                boot_order=int(order) if order and order.isdigit() else None,
            )
        )
    return sort_disks(disks)


def _bus_of(target: str) -> str:
    return {"vd": "virtio", "sd": "scsi", "hd": "ide", "xvd": "xen", "fd": "fdc", "ub": "usb"}.get(
        _target_parts(target)[0], "unknown"
    )


def parse_metadata(domain_xml: str) -> dict[str, str]:
    """The key/value pairs the service wrote under its namespace in ``<metadata>``."""
    root = ET.fromstring(domain_xml)
    found: dict[str, str] = {}
    for el in root.findall(f"./metadata/{{{NAMESPACE}}}domain/{{{NAMESPACE}}}meta"):
        name = el.get("name")
        if name:
            found[name] = el.text or ""
    return found


@dataclass(frozen=True)
class VolumeXml:
    """What a ``<volume>`` document says about the bytes behind it."""

    name: str
    path: str | None
    format: str | None  # our vocabulary; None when the pool does not tell
    capacity: int | None  # virtual bytes
    physical: int | None  # bytes a download gives
    backing_path: str | None
    backing_format: str | None


def parse_volume(volume_xml: str) -> VolumeXml:
    """Read a volume's format, sizes and backing store from its XML."""
    root = ET.fromstring(volume_xml)
    fmt = root.find("./target/format")
    backing = root.find("./backingStore/path")
    backing_fmt = root.find("./backingStore/format")
    return VolumeXml(
        name=root.findtext("name") or "",
        path=root.findtext("./target/path") or root.findtext("key"),
        format=format_from_libvirt(fmt.get("type") if fmt is not None else None),
        capacity=_bytes(root.find("capacity")),
        physical=_bytes(root.find("physical")),
        backing_path=(backing.text or "").strip() or None if backing is not None else None,
        backing_format=format_from_libvirt(
            backing_fmt.get("type") if backing_fmt is not None else None
        ),
    )


_UNITS = {"": 1, "b": 1, "bytes": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20}
_UNITS |= {"g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}
_UNITS |= {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}


def _bytes(el: ET.Element | None) -> int | None:
    if el is None or not (el.text or "").strip().isdigit():
        return None
    unit = _UNITS.get((el.get("unit") or "bytes").lower())
    return int((el.text or "").strip()) * unit if unit else None


def volume_xml(name: str, capacity: int, fmt: str) -> str:
    """A new, thinly allocated volume of ``capacity`` virtual bytes in format ``fmt``."""
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity)
    ET.SubElement(vol, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type=format_to_libvirt(fmt))
    return ET.tostring(vol, encoding="unicode")


@dataclass(frozen=True)
class BusPlan:
    bus: str  # libvirt's <target bus>
    prefix: str  # vd, sd, hd
    machine: str  # q35 or pc
    controller: str | None  # a SCSI controller model to add


_BUSES = {
    "virtio": BusPlan("virtio", "vd", "q35", None),
    "scsi": BusPlan("scsi", "sd", "q35", "virtio-scsi"),
    # A VMware guest carries drivers for PVSCSI, not virtio: QEMU emulates the real thing.
    "pvscsi": BusPlan("scsi", "sd", "q35", "vmpvscsi"),
    "sata": BusPlan("sata", "sd", "q35", None),
    # q35 has no IDE controller; an IDE guest gets the i440fx machine it expects.
    "ide": BusPlan("ide", "hd", "pc", None),
}
NIC_MODELS = frozenset({"virtio", "e1000", "e1000e", "vmxnet3", "rtl8139"})


def bus_plan(disk_bus: str) -> BusPlan:
    """How a resolved disk driver maps onto libvirt's buses; ComputeError if unknown."""
    try:
        return _BUSES[disk_bus]
    except KeyError:
        raise ComputeError(
            f"Disk driver {disk_bus!r} is not supported on libvirt hosts "
            f"(supported: {', '.join(sorted(_BUSES))})."
        ) from None


def target_name(prefix: str, index: int) -> str:
    """The ``index``-th (from 0) target of a bus prefix: vda, …, vdz, vdaa, vdab…"""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("a") + rem) + letters
    return prefix + letters


def domain_xml(spec: NewDomain, name: str, virt_type: str, formats: list[str]) -> str:
    """The XML of a new domain over the spec's volumes (``formats`` in the same order, our
    vocabulary): x86_64, q35 (pc for IDE), ACPI for graceful shutdown, the first volume as
    boot disk, one NIC, a serial console and a VNC display on the host's loopback."""
    if not spec.volumes:
        raise ComputeError("A domain needs at least one volume.")
    if spec.nic_model not in NIC_MODELS:
        raise ComputeError(
            f"Network driver {spec.nic_model!r} is not supported on libvirt hosts "
            f"(supported: {', '.join(sorted(NIC_MODELS))})."
        )
    plan = bus_plan(spec.disk_bus)
    ET.register_namespace(_NS_PREFIX, NAMESPACE)
    dom = ET.Element("domain", type=virt_type)
    ET.SubElement(dom, "name").text = name
    if spec.uuid:
        ET.SubElement(dom, "uuid").text = spec.uuid
    if spec.metadata:
        meta = ET.SubElement(ET.SubElement(dom, "metadata"), f"{{{NAMESPACE}}}domain")
        for key, value in sorted(spec.metadata.items()):
            ET.SubElement(meta, f"{{{NAMESPACE}}}meta", name=key).text = value
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(dom, "vcpu").text = str(spec.vcpus)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine=plan.machine).text = "hvm"
    if spec.uefi:
        os_el.set("firmware", "efi")
        firmware = ET.SubElement(os_el, "firmware")
        ET.SubElement(firmware, "feature", enabled="no", name="secure-boot")
        ET.SubElement(firmware, "feature", enabled="no", name="enrolled-keys")
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    # KVM: the host's CPU model; TCG: every feature QEMU can emulate (newer guests need
    # x86-64-v2, which the default qemu64 model lacks).
    ET.SubElement(dom, "cpu", mode="host-model" if virt_type == "kvm" else "maximum")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    if plan.controller:
        ET.SubElement(devices, "controller", type="scsi", index="0", model=plan.controller)
    for index, (vol, fmt) in enumerate(zip(spec.volumes, formats, strict=True)):
        disk = ET.SubElement(devices, "disk", type="volume", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=format_to_libvirt(fmt))
        ET.SubElement(disk, "source", pool=vol.pool, volume=vol.name)
        ET.SubElement(disk, "target", dev=target_name(plan.prefix, index), bus=plan.bus)
        if index == 0:
            ET.SubElement(disk, "boot", order="1")
    if spec.network is None:
        nic = ET.SubElement(devices, "interface", type="user")
    else:
        nic = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(nic, "source", network=spec.network)
    ET.SubElement(nic, "model", type=spec.nic_model)
    ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(devices, "console", type="pty")
    ET.SubElement(devices, "graphics", type="vnc", autoport="yes", listen="127.0.0.1")
    return ET.tostring(dom, encoding="unicode")


# x86-64-v2: what every CPU with hardware virtualisation has had for fifteen years. A KVM whose
# host CPU model has to disable one of these is an emulation of KVM that hangs real guests.
_BASELINE_FEATURES = frozenset({"pni", "ssse3", "sse4.1", "sse4.2", "cx16", "popcnt", "lahf_lm"})


def kvm_usable(domain_capabilities_xml: str) -> bool:
    """Whether the KVM domain capabilities describe a KVM that runs guests: a supported
    host-model CPU that does not lack x86-64-v2 features."""
    root = ET.fromstring(domain_capabilities_xml)
    if (root.findtext("domain") or "") != "kvm":
        return False
    mode = root.find("./cpu/mode[@name='host-model']")
    if mode is None or mode.get("supported") != "yes":
        return False
    disabled = {
        f.get("name") for f in mode.findall("feature") if f.get("policy") in ("disable", "forbid")
    }
    return not (disabled & _BASELINE_FEATURES)


def offers_kvm(capabilities_xml: str, arch: str = "x86_64") -> bool:
    """Whether the host's capabilities list a KVM domain type for ``arch`` guests."""
    root = ET.fromstring(capabilities_xml)
    for guest in root.findall("guest"):
        arch_el = guest.find("arch")
        if guest.findtext("os_type") != "hvm" or arch_el is None or arch_el.get("name") != arch:
            continue
        if arch_el.find("domain[@type='kvm']") is not None:
            return True
    return False
