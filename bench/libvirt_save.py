"""Saving a 3-disk VM from a libvirt host vs from the built-in inventory, in one run.

The same three disks (a partitioned Linux system disk with ~300 MiB of data and two ~350 MiB
data disks, as in ``dataplane.py``) are saved twice per round through
``POST /servers/{id}/save-host-image``:

* built-in: the disks are a built-in server's files, read directly by the worker;
* libvirt: byte-identical copies are volumes of a directory pool on the local libvirt
  daemon, attached to a defined (shut off) domain; the host is registered by its TCP URI
  (``qemu+tcp://127.0.0.1/system``) when the daemon listens there, else ``qemu:///system``,
  and the worker reads every byte through libvirt's storage-volume streams.

Rounds alternate the two (built-in first), and the ratio is of the medians. Target: the
libvirt save takes at most 1.3× the built-in save.

    uv run python bench/libvirt_save.py [--rounds 3] [--dir DIR]

Needs root and the libvirt daemon (``scripts/setup`` installs it; the daemon is started when
it is not running, as the test suite does).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


from tests.libvirt_env import ensure_daemon, unique_name  # noqa: E402

from dataplane import MiB, Server, build_vm_disks, upload  # noqa: E402

TARGET = 1.3


def define_domain(conn: object, name: str, pool: str, volumes: list[str]) -> str:
    """A shut-off domain over the pool's volumes (never started)."""
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = "256"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="q35").text = "hvm"
    devices = ET.SubElement(dom, "devices")
    for i, vol in enumerate(volumes):
        disk = ET.SubElement(devices, "disk", type="volume", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="qcow2")
        ET.SubElement(disk, "source", pool=pool, volume=vol)
        ET.SubElement(disk, "target", dev=f"vd{chr(ord('a') + i)}", bus="virtio")
    return str(conn.defineXML(ET.tostring(dom, encoding="unicode")).UUIDString())  # type: ignore[attr-defined]


def save(server: Server, server_id: str, name: str) -> float:
    start = time.perf_counter()
    r = server.client.post(f"/servers/{server_id}/save-host-image", json={"name": name})
    r.raise_for_status()
    task = server.wait_task(r.json()["task_id"])
    took = time.perf_counter() - start
    if task["status"] != "succeeded":
        raise SystemExit(f"save {name} failed: {task}")
    return took


def main() -> None:
    import libvirt

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()

    daemon = ensure_daemon()
    uri = daemon.tcp_uri or daemon.uri
    work = Path(tempfile.mkdtemp(prefix="hostimage-bench-libvirt-", dir=args.dir))
    work.chmod(0o755)
    pool_dir = work / "pool"
    pool_dir.mkdir(mode=0o755)
    conn = libvirt.open(daemon.uri)
    pool_name, dom_uuid = unique_name("bench-pool"), None
    server = Server(work / "server")
    try:
        disks = build_vm_disks(work / "vm")
        written = sum(d.stat().st_size for d in disks) / MiB
        ids = [upload(server, d)[0] for d in disks]
        r = server.client.post(
            "/servers", json={"name": "bench-builtin", "disks": [{"image_id": i} for i in ids]}
        )
        builtin_id = r.json()["id"]
        server.wait_task(r.json()["task_id"])
        for d in disks:
            d.unlink()
        # The very same bytes as volumes of a pool on the host.
        files = sorted((work / "server" / "disks" / builtin_id).glob("disk*.qcow2"))
        volumes = []
        for f in files:
            shutil.copyfile(f, pool_dir / f.name)
            volumes.append(f.name)
        conn.storagePoolCreateXML(
            f"<pool type='dir'><name>{pool_name}</name>"
            f"<target><path>{pool_dir}</path></target></pool>",
            0,
        )
        dom_name = unique_name("bench-dom")
        dom_uuid = define_domain(conn, dom_name, pool_name, volumes)
        projects = server.client.get("/projects").json()["items"]
        r = server.client.post(
            "/hosts",
            json={
                "name": "bench-host",
                "uri": uri,
                "project_id": projects[0]["id"],
                "storage_pool": pool_name,
            },
        )
        r.raise_for_status()
        host = r.json()
        deadline = time.monotonic() + 120
        libvirt_id = None
        while libvirt_id is None and time.monotonic() < deadline:
            items = server.client.get(
                "/servers", params={"host_id": host["id"], "scope": "system"}
            ).json()["items"]
            libvirt_id = next((s["id"] for s in items if s["name"] == dom_name), None)
            time.sleep(0.5)
        if libvirt_id is None:
            raise SystemExit("the host's domain did not appear")

        print(f"save a 3-disk VM ({written:.0f} MiB written), host URI {uri}")
        builtin, remote = [], []
        for n in range(args.rounds):
            builtin.append(save(server, builtin_id, f"bench-builtin-{n}"))
            remote.append(save(server, libvirt_id, f"bench-libvirt-{n}"))
            print(f"  round {n + 1}: built-in {builtin[-1]:.2f} s, libvirt {remote[-1]:.2f} s")
        b, v = statistics.median(builtin), statistics.median(remote)
        ratio = v / b
        verdict = "meets" if ratio <= TARGET else "MISSES"
        print(
            f"{'save 3-disk VM through volume streams':<40} {v:>8.2f} s  "
            f"built-in {b:>8.2f} s  ratio {ratio:4.2f} ({verdict} target <= {TARGET})"
        )
    finally:
        server.stop()
        if dom_uuid:
            conn.lookupByUUIDString(dom_uuid).undefine()
        with contextlib.suppress(libvirt.libvirtError):
            conn.storagePoolLookupByName(pool_name).destroy()
        conn.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
