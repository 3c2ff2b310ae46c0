"""F1 and F11 on a real libvirt daemon (SPEC §9.2), through the API, on both databases.

The host is registered by its TCP URI (``qemu+tcp://127.0.0.1/system``): the worker reads
and writes disks only through libvirt's storage-volume streams, as it would on a remote
hypervisor. Everything is real: libvirtd, QEMU (TCG), qemu-img, libguestfs, the database.
Results are read back independently (``qemu-img compare``, debugfs) from the pool directory.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid as uuidlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, World
from tests.imaging.diskfactory import (
    OLD_MACHINE_ID,
    PAYLOAD_PATH,
    TEMPLATE_HOSTNAME,
    build_data_disk,
    build_template_disk,
    open_filesystem,
    payload_bytes,
)
from tests.libvirt_env import (
    Daemon,
    DiskSpec,
    Domains,
    Pool,
    libvirt_daemon,  # noqa: F401  (fixture)
    libvirt_domains,  # noqa: F401  (fixture)
    libvirt_pool,  # noqa: F401  (fixture)
    make_chain,
    make_ext4,
    same_content,
    unique_name,
)

MiB = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(pool: Pool) -> dict[str, str]:
    return {p.name: _sha256(p) for p in sorted(pool.path.iterdir()) if p.is_file()}


def _register(world: World, uri: str, pool: Pool, name: str | None = None) -> dict[str, Any]:
    r = world.admin.post(
        "/hosts",
        {
            "name": name or unique_name("host"),
            "uri": uri,
            "project_id": world.projects["p0a"],
            "storage_pool": pool.name,
        },
    )
    assert r.status_code == 201, r.text
    host: dict[str, Any] = r.json()
    assert host["status"] == "connected", host
    assert host["versions"]["hypervisor"].startswith("QEMU"), host
    world.worker.drain()  # the first sync
    return host


def _server(api: Api, host_id: str, name: str) -> dict[str, Any]:
    items = api.get("/servers", params={"host_id": host_id, "scope": "system"}).json()["items"]
    found = [s for s in items if s["name"] == name]
    assert found, (name, [s["name"] for s in items])
    return found[0]


def _task_ok(world: World, task_id: str) -> dict[str, Any]:
    world.worker.drain()
    task: dict[str, Any] = world.admin.get(f"/tasks/{task_id}").json()
    assert task["status"] == "succeeded", task
    return task


def _download(world: World, image_id: str, dest: Path) -> Path:
    r = world.admin.get(f"/images/{image_id}/data")
    assert r.status_code == 200, r.text
    dest.write_bytes(r.content)
    return dest


def _domain_xml(conn: Any, uuid: str) -> ET.Element:
    return ET.fromstring(conn.lookupByUUIDString(uuid).XMLDesc(0))


def _template_domain(pool: Pool, domains: Domains, work: Path) -> tuple[str, str, Path, Path]:
    """A 3-disk template VM in ``pool``: a Linux system disk (qcow2 volume), an ext4 data disk
    that is a 2-layer qcow2 backing chain, and a raw data disk of random bytes. Returns its
    uuid, name, the chain's top layer and the raw disk."""
    system = build_template_disk(work, "tpl-system", fmt="qcow2")
    pool.add("tpl-system.qcow2", system.path)
    layers = make_chain(
        pool.path,
        "tpl-data",
        [{"data.txt": b"version 0\n"}, {"data.txt": b"version 1\n", "new.txt": b"added\n"}],
    )
    pool.refresh()
    raw = pool.add("tpl-random.raw", build_data_disk(work / "random.raw", "random", 8 * MiB))
    uuid, name = domains.define(
        [
            DiskSpec("vda", "qcow2", pool=pool.name, volume="tpl-system.qcow2"),
            DiskSpec("vdb", "qcow2", path=layers[-1]),
            DiskSpec("vdc", "raw", path=raw),
        ],
        name=unique_name("tpl"),
    )
    return uuid, name, layers[-1], raw


# The longest test of the suite (two libguestfs appliances under TCG): run once, on PostgreSQL
# with S3 storage, the deployment a KVM cloud runs; the API tests of hosts run on both.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_save_a_libvirt_vm_and_create_vms_on_the_host(
    world: World,
    libvirt_daemon: Daemon,  # noqa: F811
    libvirt_pool: Pool,  # noqa: F811
    libvirt_domains: Domains,  # noqa: F811
    tmp_path: Path,
) -> None:
    world.worker.rt = _fast_shutdown(world)
    pool, conn = libvirt_pool, libvirt_domains.conn
    uuid, name, chain_top, raw = _template_domain(pool, libvirt_domains, tmp_path)
    host = _register(world, libvirt_daemon.require_tcp(), pool)
    server = _server(world.admin, host["id"], name)
    assert server["status"] == "ready" and server["external_id"] == uuid
    assert [(d["target"], d["format"]) for d in server["disks"]] == [
        ("vda", "qcow2"),
        ("vdb", "qcow2"),
        ("vdc", "raw"),
    ]
    assert server["disks"][0]["pool"] == pool.name
    assert server["disks"][0]["volume"] == "tpl-system.qcow2"
    assert server["disks"][2]["size"] == 8 * MiB
    before, xml_before = _fingerprint(pool), conn.lookupByUUIDString(uuid).XMLDesc(0)

    # F1 through volume streams.
    r = world.admin.post(f"/servers/{server['id']}/save-host-image", {"name": "kvm-golden"})
    assert r.status_code == 202, r.text
    hid = r.json()["host_image_id"]
    task = _task_ok(world, r.json()["task_id"])
    assert task["progress"] == 100
    hi = world.admin.get(f"/host-images/{hid}").json()
    assert hi["status"] == "active" and hi["source_server_id"] == server["id"], hi
    assert [s["name"] for s in hi["sub_images"]] == [
        "kvm-golden-root",
        "kvm-golden-data-1",
        "kvm-golden-data-2",
    ]
    # The system disk lost its identity and kept its data; the chain was flattened; the
    # raw disk is copied as it is.
    sys_copy = _download(world, hi["sub_images"][0]["id"], tmp_path / "sys.qcow2")
    with open_filesystem(sys_copy, "qcow2", _mk(tmp_path / "sysfs"), partition=2) as root:
        assert not [n for n in root.listdir("/etc/ssh") if n.startswith("ssh_host_")]
        assert root.read("/etc/machine-id") == b""
        assert root.read(PAYLOAD_PATH) == payload_bytes()
        assert root.read("/etc/hostname") == f"{TEMPLATE_HOSTNAME}\n".encode()
    data1 = _download(world, hi["sub_images"][1]["id"], tmp_path / "d1.qcow2")
    assert _no_backing(data1)
    assert same_content(data1, "qcow2", chain_top, "qcow2")
    with open_filesystem(data1, "qcow2", _mk(tmp_path / "d1fs")) as fs:
        assert fs.read("/data.txt") == b"version 1\n" and fs.read("/new.txt") == b"added\n"
    data2 = _download(world, hi["sub_images"][2]["id"], tmp_path / "d2.qcow2")
    assert same_content(data2, "qcow2", raw, "raw")
    # The domain and its volumes were only read.
    assert _fingerprint(pool) == before
    assert conn.lookupByUUIDString(uuid).XMLDesc(0) == xml_before
    assert world.admin.get(f"/servers/{server['id']}").json()["status"] == "ready"

    # F11 on the host: volumes in its pool, a fresh identity, a domain defined.
    r = world.admin.post(
        "/servers",
        {
            "name": "web 1",
            "project_id": world.projects["p0a"],
            "host_id": host["id"],
            "host_image_id": hid,
            "hostname": "web-1",
            "login_user": "cloud",
            "password": "correct horse 1",
            "memory_mb": 128,
        },
    )
    assert r.status_code == 202, r.text
    vm = r.json()
    assert vm["host_id"] == host["id"] and vm["created_here"] is True
    _task_ok(world, vm["task_id"])
    vm = world.admin.get(f"/servers/{vm['id']}").json()
    assert vm["status"] == "ready" and vm["external_id"], vm
    libvirt_domains.adopt(vm["external_id"])
    volumes = [d["volume"] for d in vm["disks"]]
    assert volumes == [f"hostimage-{vm['id']}-disk{i}.qcow2" for i in range(3)]
    assert [d["pool"] for d in vm["disks"]] == [pool.name] * 3
    dom = _domain_xml(conn, vm["external_id"])
    assert dom.findtext("name") == "web 1"
    assert int(dom.findtext("memory") or 0) == 128 * 1024
    sources = [d.find("source") for d in dom.iter("disk")]
    assert [s.get("volume") for s in sources if s is not None] == volumes
    # Linux on KVM: scsi disks on a virtio-scsi controller, a virtio NIC (F11).
    assert {t.get("bus") for t in dom.iter("target") if t.get("bus")} == {"scsi"}
    assert dom.find("devices/interface/model").get("type") == "virtio"  # type: ignore[union-attr]
    system_vol = pool.path / volumes[0]
    with open_filesystem(system_vol, "qcow2", _mk(tmp_path / "vmfs"), partition=2) as root:
        assert root.read("/etc/hostname").strip() == b"web-1"
        machine_id = root.read("/etc/machine-id").strip()
        assert len(machine_id) == 32 and machine_id != OLD_MACHINE_ID.encode()
        cloud = next(
            line
            for line in root.read("/etc/shadow").decode().splitlines()
            if line.startswith("cloud:")
        )
        assert cloud.split(":")[1].startswith("$6$")
        assert root.read(PAYLOAD_PATH) == payload_bytes()
    assert same_content(pool.path / volumes[1], "qcow2", chain_top, "qcow2")
    assert same_content(pool.path / volumes[2], "qcow2", raw, "raw")

    # Start (QEMU under TCG), then stop: a graceful shutdown the guest ignores is forced.
    r = world.admin.post(f"/servers/{vm['id']}/start")
    assert r.status_code == 200 and r.json()["task_id"], r.text
    _task_ok(world, r.json()["task_id"])
    assert world.admin.get(f"/servers/{vm['id']}").json()["status"] == "running"
    assert conn.lookupByUUIDString(vm["external_id"]).isActive()
    r = world.admin.post(f"/servers/{vm['id']}/save-host-image", {"name": "nope"})
    assert r.status_code == 409 and r.json()["code"] == "server_not_stopped"
    r = world.admin.post(f"/servers/{vm['id']}/stop")
    _task_ok(world, r.json()["task_id"])
    assert world.admin.get(f"/servers/{vm['id']}").json()["status"] == "ready"
    assert not conn.lookupByUUIDString(vm["external_id"]).isActive()

    # Delete: the domain and the volumes the service made go; nothing else does.
    r = world.admin.delete(f"/servers/{vm['id']}")
    assert r.status_code == 202, r.text
    _task_ok(world, r.json()["task_id"])
    assert vm["external_id"] not in [d.UUIDString() for d in conn.listAllDomains()]
    pool.refresh()
    assert _fingerprint(pool) == before
    assert conn.lookupByUUIDString(uuid).XMLDesc(0) == xml_before


def test_a_vm_created_and_started_at_once(
    world: World,
    libvirt_daemon: Daemon,  # noqa: F811
    libvirt_pool: Pool,  # noqa: F811
    libvirt_domains: Domains,  # noqa: F811
) -> None:
    """Blank disks (no identity to deploy): the domain is defined and started by the task;
    a name taken on the host is made unique; a sync keeps the server as it is."""
    world.worker.rt = _fast_shutdown(world)
    conn = libvirt_domains.conn
    host = _register(world, libvirt_daemon.uri, libvirt_pool)
    taken, _ = libvirt_domains.define([], name=unique_name("taken"))
    taken_name = conn.lookupByUUIDString(taken).name()
    r = world.admin.post(
        "/servers",
        {
            "name": taken_name,
            "project_id": world.projects["p0a"],
            "host_id": host["id"],
            "disks": [{"size_mb": 16}, {"size_mb": 8}],
            "start": True,
            "memory_mb": 64,
        },
    )
    assert r.status_code == 202, r.text
    vm = r.json()
    _task_ok(world, vm["task_id"])
    vm = world.admin.get(f"/servers/{vm['id']}").json()
    libvirt_domains.adopt(vm["external_id"])
    assert vm["status"] == "running", vm
    # The domain's UUID is the server's id: a retried build finds what an earlier run made.
    assert vm["external_id"] == str(uuidlib.UUID(vm["id"]))
    dom = conn.lookupByUUIDString(vm["external_id"])
    assert dom.isActive() and dom.name() != taken_name and dom.name().startswith(taken_name)
    assert [d["size"] for d in vm["disks"]] == [16 * MiB, 8 * MiB]
    r = world.admin.post(f"/hosts/{host['id']}/sync")
    _task_ok(world, r.json()["task_id"])
    again = world.admin.get(f"/servers/{vm['id']}").json()
    assert again["status"] == "running" and again["name"] == taken_name
    assert [d["source_image_id"] for d in again["disks"]] == [None, None]
    # A running VM cannot be deleted; stopped, it can.
    assert world.admin.delete(f"/servers/{vm['id']}").json()["code"] == "bad_status"
    _task_ok(world, world.admin.post(f"/servers/{vm['id']}/stop").json()["task_id"])
    _task_ok(world, world.admin.delete(f"/servers/{vm['id']}").json()["task_id"])
    libvirt_pool.refresh()
    assert [v.name() for v in libvirt_pool.pool.listAllVolumes()] == []


def test_disks_that_are_not_volumes_are_refused_on_remote_hosts(
    world: World,
    libvirt_daemon: Daemon,  # noqa: F811
    libvirt_pool: Pool,  # noqa: F811
    libvirt_domains: Domains,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A disk file outside every pool can be read on the host's own machine only: over a
    remote URI the save ends ``killed`` and says why; the domain is untouched."""
    from tests.libvirt_env import scratch_dir

    outside = scratch_dir("outside")
    try:
        # An ext4 file system: the system disk's identity is cleaned by the fast path.
        disk = make_ext4(outside / "loose.raw", {"etc/hostname": b"loose\n"})
        original = _sha256(disk)
        uuid, name = libvirt_domains.define([DiskSpec("vda", "raw", path=disk)])
        host = _register(world, libvirt_daemon.require_tcp(), libvirt_pool)
        server = _server(world.admin, host["id"], name)
        r = world.admin.post(f"/servers/{server['id']}/save-host-image", {"name": "loose"})
        assert r.status_code == 202, r.text
        world.worker.drain()
        hi = world.admin.get(f"/host-images/{r.json()['host_image_id']}").json()
        assert hi["status"] == "killed", hi
        assert "not a volume" in hi["status_reason"], hi["status_reason"]
        assert world.admin.get(f"/servers/{server['id']}").json()["status"] == "ready"
        # The same domain through the local URI: read as a local file.
        local = _register(world, libvirt_daemon.uri, libvirt_pool)
        server = _server(world.admin, local["id"], name)
        r = world.admin.post(
            f"/servers/{server['id']}/save-host-image", {"name": "loose-2", "auto_start": True}
        )
        _task_ok(world, r.json()["task_id"])
        # auto_start: the domain itself is started once the image is saved.
        assert world.admin.get(f"/servers/{server['id']}").json()["status"] == "running"
        assert libvirt_domains.conn.lookupByUUIDString(uuid).isActive()
        hi = world.admin.get(f"/host-images/{r.json()['host_image_id']}").json()
        assert hi["status"] == "active", hi
        got = _download(world, hi["sub_images"][0]["id"], tmp_path / "loose.qcow2")
        with open_filesystem(got, "qcow2", _mk(tmp_path / "loosefs")) as fs:
            assert fs.read("/etc/hostname") == b"loose\n"
        assert _sha256(disk) == original
        assert uuid in [d.UUIDString() for d in libvirt_domains.conn.listAllDomains()]
    finally:
        subprocess.run(["rm", "-rf", str(outside)], check=False)


def test_a_vm_that_cannot_start_is_created_and_says_why(
    world: World,
    libvirt_daemon: Daemon,  # noqa: F811
    libvirt_pool: Pool,  # noqa: F811
    libvirt_domains: Domains,  # noqa: F811
) -> None:
    """The host's network does not exist: libvirt defines the domain (networks are checked
    when a domain starts), starting it fails, and the server is ready with the reason."""
    r = world.admin.post(
        "/hosts",
        {
            "name": unique_name("host"),
            "uri": libvirt_daemon.uri,
            "project_id": world.projects["p0a"],
            "storage_pool": libvirt_pool.name,
            "network": "hi-test-no-such-network",
        },
    )
    host = r.json()
    world.worker.drain()
    r = world.admin.post(
        "/servers",
        {
            "name": unique_name("vm"),
            "project_id": world.projects["p0a"],
            "host_id": host["id"],
            "disks": [{"size_mb": 8}],
            "start": True,
        },
    )
    assert r.status_code == 202, r.text
    vm = r.json()
    _task_ok(world, vm["task_id"])
    got = world.admin.get(f"/servers/{vm['id']}").json()
    libvirt_domains.adopt(str(uuidlib.UUID(vm["id"])))
    assert got["status"] == "ready", got
    assert "starting it failed" in got["status_reason"], got
    assert "hi-test-no-such-network" in got["status_reason"], got
    # Deleting it removes the domain (by the server's UUID) and its volumes.
    _task_ok(world, world.admin.delete(f"/servers/{vm['id']}").json()["task_id"])
    libvirt_pool.refresh()
    assert [v.name() for v in libvirt_pool.pool.listAllVolumes()] == []
    domains = [d.UUIDString() for d in libvirt_domains.conn.listAllDomains()]
    assert str(uuidlib.UUID(vm["id"])) not in domains


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _no_backing(path: Path) -> bool:
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", "-f", "qcow2", str(path)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return '"backing-filename"' not in out


def _fast_shutdown(world: World) -> Any:
    from dataclasses import replace

    # The test guests have no OS to answer an ACPI shutdown: force them off after 1 s.
    return replace(world.worker.rt, shutdown_seconds=1.0)


@pytest.fixture(autouse=True)
def _root_only() -> None:
    import os

    if os.geteuid() != 0:
        from tests.libvirt_env import unavailable

        unavailable("the libvirt tests need root (they run the system daemon)")
