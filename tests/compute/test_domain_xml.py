"""libvirt XML read and written by the driver: pure functions, no daemon."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from hostimage.compute import domain_xml as dx
from hostimage.compute.model import ComputeError, NewDomain, VolumeRef


def _disk(target: str, device: str = "disk", boot: int | None = None, **source: str) -> str:
    src = " ".join(f"{k}='{v}'" for k, v in source.items())
    kind = "volume" if "pool" in source else ("block" if "dev" in source else "file")
    boot_el = f"<boot order='{boot}'/>" if boot else ""
    bus = {"vd": "virtio", "sd": "scsi", "hd": "ide"}[target[:2]]
    return (
        f"<disk type='{kind}' device='{device}'><driver name='qemu' type='qcow2'/>"
        f"<source {src}/><target dev='{target}' bus='{bus}'/>{boot_el}</disk>"
    )


def _domain(*disks: str) -> str:
    return f"<domain type='kvm'><name>d</name><devices>{''.join(disks)}</devices></domain>"


def test_disks_are_device_disk_only_in_natural_order_by_first_seen_prefix() -> None:
    targets = ["vdb", "sdb", "vdaa", "vda", "sda", "vdz", "hda"]
    xml = _domain(
        *[_disk(t, file=f"/d/{t}") for t in targets],
        _disk("sdc", device="cdrom", file="/iso"),
        _disk("hdb", device="floppy", file="/fd"),
    )
    disks = dx.parse_disks(xml)
    assert [d.target for d in disks] == ["vda", "vdb", "vdz", "vdaa", "sda", "sdb", "hda"]
    assert all(d.kind == "file" and d.format == "qcow2" for d in disks)
    assert disks[0].path == "/d/vda"


def test_boot_order_puts_the_boot_disk_first() -> None:
    xml = _domain(
        _disk("vda", file="/a"), _disk("vdb", boot=2, file="/b"), _disk("sda", boot=1, file="/c")
    )
    assert [d.target for d in dx.parse_disks(xml)] == ["sda", "vdb", "vda"]


def test_volume_block_and_network_sources() -> None:
    network = (
        "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
        "<source protocol='rbd' name='pool/img'/><target dev='vdc' bus='virtio'/></disk>"
    )
    disks = dx.parse_disks(
        _domain(_disk("vda", pool="p", volume="v"), _disk("vdb", dev="/dev/sdz"), network)
    )
    assert (disks[0].kind, disks[0].pool, disks[0].volume, disks[0].path) == (
        "volume",
        "p",
        "v",
        None,
    )
    assert (disks[1].kind, disks[1].path) == ("block", "/dev/sdz")
    assert (disks[2].kind, disks[2].protocol, disks[2].format) == ("network", "rbd", "raw")


def test_target_names_round_trip_natural_order() -> None:
    names = [dx.target_name("vd", i) for i in range(60)]
    assert names[:3] == ["vda", "vdb", "vdc"] and names[25:28] == ["vdz", "vdaa", "vdab"]
    shuffled = names[:]
    random.Random(1).shuffle(shuffled)
    xml = _domain(*[_disk(t, file=f"/{t}") for t in shuffled])
    assert [d.target for d in dx.parse_disks(xml)] == names


def test_volume_xml_parse() -> None:
    xml = """<volume type='file'><name>top.qcow2</name><key>/p/top.qcow2</key>
      <capacity unit='bytes'>67108864</capacity><allocation unit='bytes'>200704</allocation>
      <physical unit='bytes'>196616</physical>
      <target><path>/p/top.qcow2</path><format type='qcow2'/></target>
      <backingStore><path>/p/base.vhd</path><format type='vpc'/></backingStore></volume>"""
    vol = dx.parse_volume(xml)
    assert vol == dx.VolumeXml(
        "top.qcow2", "/p/top.qcow2", "qcow2", 64 << 20, 196616, "/p/base.vhd", "vhd"
    )
    plain = dx.parse_volume("<volume><name>a</name><capacity unit='KiB'>4</capacity></volume>")
    assert (plain.capacity, plain.backing_path, plain.format) == (4096, None, None)


def test_new_volume_is_thin_in_libvirt_format_names() -> None:
    root = ET.fromstring(dx.volume_xml("n", 1234, "vhd"))
    assert root.findtext("name") == "n"
    assert root.findtext("capacity") == "1234" and root.findtext("allocation") == "0"
    assert root.find("./target/format").get("type") == "vpc"  # type: ignore[union-attr]


def _spec(**kw: object) -> NewDomain:
    base: dict[str, object] = {
        "name": "web",
        "volumes": (VolumeRef("p", "a", "/p/a"), VolumeRef("p", "b", "/p/b")),
        "disk_bus": "virtio",
        "nic_model": "virtio",
        "network": None,
    }
    base.update(kw)
    return NewDomain(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bus", "machine", "targets", "target_bus", "controller"),
    [
        ("virtio", "q35", ["vda", "vdb"], "virtio", None),
        ("scsi", "q35", ["sda", "sdb"], "scsi", "virtio-scsi"),
        ("pvscsi", "q35", ["sda", "sdb"], "scsi", "vmpvscsi"),
        ("sata", "q35", ["sda", "sdb"], "sata", None),
        ("ide", "pc", ["hda", "hdb"], "ide", None),
    ],
)
def test_domain_buses(
    bus: str, machine: str, targets: list[str], target_bus: str, controller: str | None
) -> None:
    root = ET.fromstring(dx.domain_xml(_spec(disk_bus=bus), "web", "qemu", ["qcow2", "raw"]))
    assert root.find("./os/type").get("machine") == machine  # type: ignore[union-attr]
    disks = root.findall("./devices/disk")
    assert [d.find("target").get("dev") for d in disks] == targets  # type: ignore[union-attr]
    assert {d.find("target").get("bus") for d in disks} == {target_bus}  # type: ignore[union-attr]
    assert [d.find("driver").get("type") for d in disks] == ["qcow2", "raw"]  # type: ignore[union-attr]
    assert disks[0].find("boot").get("order") == "1"  # type: ignore[union-attr]
    assert disks[1].find("boot") is None
    models = [c.get("model") for c in root.findall("./devices/controller[@type='scsi']")]
    assert models == ([controller] if controller else [])


def test_domain_details_network_uefi_metadata() -> None:
    spec = _spec(
        network="default",
        nic_model="vmxnet3",
        uefi=True,
        vcpus=2,
        memory_mib=512,
        metadata={"server_id": "s-1", "host_image_id": "h & <2>"},
    )
    xml = dx.domain_xml(spec, "web-2", "kvm", ["qcow2", "qcow2"])
    root = ET.fromstring(xml)
    assert root.get("type") == "kvm" and root.findtext("name") == "web-2"
    assert root.findtext("vcpu") == "2" and root.findtext("memory") == "512"
    nic = root.find("./devices/interface")
    assert nic is not None and nic.get("type") == "network"
    assert nic.find("source").get("network") == "default"  # type: ignore[union-attr]
    assert nic.find("model").get("type") == "vmxnet3"  # type: ignore[union-attr]
    os_el = root.find("os")
    assert os_el is not None and os_el.get("firmware") == "efi"
    assert {f.get("name"): f.get("enabled") for f in os_el.findall("./firmware/feature")} == {
        "secure-boot": "no",
        "enrolled-keys": "no",
    }
    assert root.find("cpu").get("mode") == "host-model"  # type: ignore[union-attr]
    assert dx.parse_metadata(xml) == {"server_id": "s-1", "host_image_id": "h & <2>"}
    user = ET.fromstring(dx.domain_xml(_spec(), "web", "qemu", ["raw", "raw"]))
    assert user.find("./devices/interface").get("type") == "user"  # type: ignore[union-attr]
    assert user.find("cpu").get("mode") == "maximum"  # type: ignore[union-attr]
    assert user.find("./os").get("firmware") is None  # type: ignore[union-attr]


def test_unknown_drivers_are_refused() -> None:
    with pytest.raises(ComputeError, match="Disk driver 'floppy'"):
        dx.domain_xml(_spec(disk_bus="floppy"), "w", "qemu", ["raw", "raw"])
    with pytest.raises(ComputeError, match="Network driver 'ne2k'"):
        dx.domain_xml(_spec(nic_model="ne2k"), "w", "qemu", ["raw", "raw"])


_CAPS = """<domainCapabilities><domain>kvm</domain><cpu>
  <mode name='host-model' supported='yes'><model fallback='forbid'>EPYC-Milan</model>
  {features}</mode></cpu></domainCapabilities>"""


def test_kvm_usable_needs_a_host_model_with_the_x86_64_v2_baseline() -> None:
    assert dx.kvm_usable(_CAPS.format(features="<feature policy='require' name='x2apic'/>"))
    assert dx.kvm_usable(_CAPS.format(features="<feature policy='disable' name='xsaves'/>"))
    assert not dx.kvm_usable(_CAPS.format(features="<feature policy='disable' name='pni'/>"))
    assert not dx.kvm_usable(_CAPS.format(features="").replace("supported='yes'", "supported='no'"))
    assert not dx.kvm_usable(_CAPS.format(features="").replace(">kvm<", ">qemu<"))


def test_offers_kvm_reads_the_guest_arch() -> None:
    caps = """<capabilities><guest><os_type>hvm</os_type><arch name='x86_64'>
      <domain type='qemu'/>{kvm}</arch></guest></capabilities>"""
    assert dx.offers_kvm(caps.format(kvm="<domain type='kvm'/>"))
    assert not dx.offers_kvm(caps.format(kvm=""))
