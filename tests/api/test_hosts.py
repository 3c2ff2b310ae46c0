"""``/hosts`` and servers found on hosts (SPEC §9.2), through the API on both databases.

The hosts here are libvirt's ``test:///`` driver reading a node file the test writes: a real
libvirt connection (the official binding, the same code path as ``qemu:///system``) whose
domains the test can add, remove and rename between syncs. Saving and creating VMs on a real
daemon are in ``tests/dataplane/test_libvirt.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hostimage.services.host_sync import schedule_syncs
from tests.api.conftest import Api, World

WEB_UUID = "11111111-2222-3333-4444-555555555555"
DB_UUID = "66666666-2222-3333-4444-555555555555"


def domain_xml(name: str, uuid: str, state: int, disks: str = "") -> str:
    # test:runstate takes a virDomainState: 1 running, 3 paused, 5 shut off.
    return f"""
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>{name}</name><uuid>{uuid}</uuid><memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices>{disks}</devices>
    <test:runstate>{state}</test:runstate>
  </domain>"""


WEB_DISKS = """
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
        <source file='/srv/images/web-root.qcow2'/><target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>
      <disk type='file' device='disk'><driver name='qemu' type='raw'/>
        <source file='/srv/images/web-data.raw'/><target dev='vdb' bus='virtio'/></disk>"""


class Node:
    """A test-driver hypervisor described by a file; each connection reads it afresh."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.domains: dict[str, str] = {}
        self.write()

    def write(self) -> None:
        self.path.write_text("<node>" + "".join(self.domains.values()) + "\n</node>\n")

    def put(self, name: str, uuid: str, state: int, disks: str = "") -> None:
        self.domains[uuid] = domain_xml(name, uuid, state, disks)
        self.write()

    def drop(self, uuid: str) -> None:
        del self.domains[uuid]
        self.write()

    @property
    def uri(self) -> str:
        return f"test://{self.path}"


@pytest.fixture()
def node(tmp_path: Path) -> Node:
    n = Node(tmp_path / "node.xml")
    n.put("web-template", WEB_UUID, 5, WEB_DISKS)
    n.put("db", DB_UUID, 1)
    return n


def add_host(w: World, node: Node, name: str = "kvm1", project: str = "p0a") -> dict[str, Any]:
    r = w.admin.post(
        "/hosts",
        {
            "name": name,
            "driver": "libvirt",
            "uri": node.uri,
            "project_id": w.projects[project],
            "storage_pool": "default",
        },
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def sync(w: World, host_id: str) -> None:
    r = w.admin.post(f"/hosts/{host_id}/sync")
    assert r.status_code == 202, r.text
    w.worker.drain()
    task = w.admin.get(f"/tasks/{r.json()['task_id']}").json()
    assert task["status"] == "succeeded", task


def servers_of(api: Api, host_id: str) -> dict[str, dict[str, Any]]:
    r = api.get("/servers", params={"host_id": host_id, "scope": "system", "limit": 100})
    assert r.status_code == 200, r.text
    return {s["name"]: s for s in r.json()["items"]}


def test_the_builtin_host_always_exists(flat_world: World) -> None:
    w = flat_world
    items = w.admin.get("/hosts").json()["items"]
    assert items[0]["id"] == "builtin" and items[0]["driver"] == "builtin"
    assert items[0]["status"] == "connected"
    assert w.admin.get("/hosts/builtin").json()["name"] == "builtin"
    for method, body in (("PATCH", {"name": "x"}), ("DELETE", None)):
        r = w.admin.request(method, "/hosts/builtin", json=body)
        assert r.status_code == 409 and r.json()["code"] == "builtin_host", r.text
    r = w.admin.post("/hosts/builtin/sync")
    assert r.status_code == 409 and r.json()["code"] == "builtin_host"


def test_add_a_host_probes_it_and_syncs_its_domains(flat_world: World, node: Node) -> None:
    w = flat_world
    host = add_host(w, node)
    assert host["status"] == "connected" and host["status_reason"] is None
    assert host["versions"]["libvirt"] == "9.0.0"
    assert host["versions"]["hypervisor"]
    assert host["project_id"] == w.projects["p0a"] and host["driver"] == "libvirt"
    # Registering queued the first sync.
    w.worker.drain()
    found = servers_of(w.admin, host["id"])
    assert set(found) == {"web-template", "db"}
    web, db = found["web-template"], found["db"]
    assert web["status"] == "ready" and db["status"] == "running"
    assert web["external_id"] == WEB_UUID and web["host_id"] == host["id"]
    assert web["created_here"] is False and web["project_id"] == w.projects["p0a"]
    # Disks only (no CD-ROM), in target order, with their formats.
    assert [(d["index"], d["target"], d["format"]) for d in web["disks"]] == [
        (0, "vda", "qcow2"),
        (1, "vdb", "raw"),
    ]
    assert w.admin.get(f"/hosts/{host['id']}").json()["servers"] == 2
    assert w.admin.get(f"/hosts/{host['id']}").json()["synced_at"] is not None
    # The host filter keeps the host's servers only.
    assert servers_of(w.admin, "builtin") == {}


def test_sync_follows_state_names_and_disappearing_domains(flat_world: World, node: Node) -> None:
    w = flat_world
    host = add_host(w, node)
    w.worker.drain()
    # Started, renamed, paused, removed.
    node.put("web-template", WEB_UUID, 1, WEB_DISKS)
    node.drop(DB_UUID)
    node.put("cache", "77777777-2222-3333-4444-555555555555", 3)
    sync(w, host["id"])
    found = servers_of(w.admin, host["id"])
    assert found["web-template"]["status"] == "running"
    assert found["cache"]["status"] == "running"  # paused: its disks are not safe to read
    assert found["db"]["status"] == "missing"
    assert "no longer defined" in found["db"]["status_reason"]
    # A missing server is never dropped; it comes back when its domain does.
    node.put("db-renamed", DB_UUID, 5)
    sync(w, host["id"])
    found = servers_of(w.admin, host["id"])
    assert "db" not in found
    assert found["db-renamed"]["status"] == "ready"
    assert found["db-renamed"]["status_reason"] is None


def test_servers_found_on_a_host_are_never_deleted_by_the_service(
    flat_world: World, node: Node
) -> None:
    w = flat_world
    host = add_host(w, node)
    w.worker.drain()
    web = servers_of(w.admin, host["id"])["web-template"]
    r = w.admin.delete(f"/servers/{web['id']}")
    assert r.status_code == 409 and r.json()["code"] == "not_created_here", r.text
    assert "undefine" in r.json()["detail"]
    # Once the domain is gone, forgetting the server is all there is to do.
    node.drop(WEB_UUID)
    sync(w, host["id"])
    r = w.admin.delete(f"/servers/{web['id']}")
    assert r.status_code == 202 and r.json()["task_id"] is None, r.text
    assert w.admin.get(f"/servers/{web['id']}").status_code == 404


def test_saving_a_running_domain_is_refused(flat_world: World, node: Node) -> None:
    w = flat_world
    host = add_host(w, node)
    w.worker.drain()
    db = servers_of(w.admin, host["id"])["db"]
    r = w.admin.post(f"/servers/{db['id']}/save-host-image", {"name": "db-golden"})
    assert r.status_code == 409 and r.json()["code"] == "server_not_stopped", r.text
    # Shut off on the host a moment ago, not yet synced: the save reads the state itself.
    web_running = servers_of(w.admin, host["id"])["web-template"]
    assert web_running["status"] == "ready"
    node.put("db", DB_UUID, 5)
    r = w.admin.post(f"/servers/{db['id']}/save-host-image", {"name": "db-golden"})
    assert r.status_code == 202, r.text
    assert w.admin.get(f"/servers/{db['id']}").json()["status"] == "saving"


def test_unreachable_hosts_are_registered_with_the_reason(flat_world: World) -> None:
    w = flat_world
    r = w.admin.post(
        "/hosts",
        {
            "name": "down",
            "uri": "qemu+tcp://127.0.0.1:1/system",
            "project_id": w.projects["p0a"],
            "storage_pool": "default",
        },
    )
    assert r.status_code == 201, r.text
    host = r.json()
    assert host["status"] == "unreachable" and host["status_reason"]
    assert host["versions"] == {"libvirt": None, "hypervisor": None} or not any(
        host["versions"].values()
    )
    sync(w, host["id"])  # a sync of an unreachable host ends; the host says why
    again = w.admin.get(f"/hosts/{host['id']}").json()
    assert again["status"] == "unreachable" and again["status_reason"]


def test_host_requests_are_checked(flat_world: World, node: Node) -> None:
    w = flat_world
    base = {"name": "h", "uri": node.uri, "project_id": w.projects["p0a"], "storage_pool": "p"}
    for bad, code in (
        ({"uri": "not a uri"}, 422),
        ({"uri": "xen:///system"}, 422),
        ({"storage_pool": "a/b"}, 422),
        ({"driver": "vmware"}, 422),
        ({"project_id": "nope"}, 400),
        ({"name": "builtin"}, 409),
    ):
        r = w.admin.post("/hosts", {**base, **bad})
        assert r.status_code == code, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    add_host(w, node, name="h")
    r = w.admin.post("/hosts", base)
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    assert w.admin.get("/hosts/unknown").status_code == 404


def test_update_and_delete_a_host(flat_world: World, node: Node) -> None:
    w = flat_world
    host = add_host(w, node)
    w.worker.drain()
    r = w.admin.patch(
        f"/hosts/{host['id']}",
        {"name": "kvm-renamed", "project_id": w.projects["p0b"], "network": "br0"},
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["name"] == "kvm-renamed" and got["network"] == "br0"
    assert got["project_id"] == w.projects["p0b"]
    # Servers already found keep their project; new ones go to the new project.
    node.put("new-vm", "88888888-2222-3333-4444-555555555555", 5)
    sync(w, host["id"])
    found = servers_of(w.admin, host["id"])
    assert found["web-template"]["project_id"] == w.projects["p0a"]
    assert found["new-vm"]["project_id"] == w.projects["p0b"]
    r = w.admin.patch(f"/hosts/{host['id']}", {"network": None})
    assert r.status_code == 200 and r.json()["network"] is None
    # Deleting a host forgets the servers found on it.
    assert w.admin.delete(f"/hosts/{host['id']}").status_code == 204
    assert w.admin.get(f"/hosts/{host['id']}").status_code == 404
    assert servers_of(w.admin, host["id"]) == {}


@pytest.mark.parametrize("role", ["domainadmin", "member", "viewer"])
def test_only_sysadmins_manage_hosts(flat_world: World, node: Node, role: str) -> None:
    w = flat_world
    host = add_host(w, node)
    api = w.add_user(f"u-{role}", role, "p0a" if role in ("member", "viewer") else "Default")
    body = {"name": "x", "uri": node.uri, "project_id": w.projects["p0a"], "storage_pool": "p"}
    for method, path, payload in (
        ("POST", "/hosts", body),
        ("PATCH", f"/hosts/{host['id']}", {"name": "y"}),
        ("DELETE", f"/hosts/{host['id']}", None),
        ("POST", f"/hosts/{host['id']}/sync", None),
    ):
        r = api.request(method, path, json=payload)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (method, path, r.text)
    # Everyone may see which hosts exist (to choose one for a VM), not how they are reached.
    listed = {h["id"]: h for h in api.get("/hosts").json()["items"]}
    mine = listed[host["id"]]
    assert mine["name"] == "kvm1" and mine["status"] == "connected"
    assert mine["uri"] is None and mine["storage_pool"] is None and mine["project_id"] is None
    assert api.get(f"/hosts/{host['id']}").json()["uri"] is None
    assert w.admin.get(f"/hosts/{host['id']}").json()["name"] == "kvm1"


def test_hosts_are_synced_periodically(flat_world: World, node: Node) -> None:
    from datetime import timedelta

    w = flat_world
    host = add_host(w, node)
    w.worker.drain()
    # Just synced: nothing due; a sync is queued once the interval has passed.
    assert schedule_syncs(w.worker.rt, timedelta(minutes=1)) == 0
    assert schedule_syncs(w.worker.rt, timedelta(0)) == 1
    assert schedule_syncs(w.worker.rt, timedelta(0)) == 0  # one pending is enough
    node.drop(DB_UUID)
    w.worker.drain()
    assert servers_of(w.admin, host["id"])["db"]["status"] == "missing"


def test_creating_a_vm_on_an_unknown_host_is_refused(flat_world: World) -> None:
    w = flat_world
    r = w.admin.post(
        "/servers",
        {
            "name": "vm",
            "project_id": w.projects["p0a"],
            "disks": [{"size_mb": 16}],
            "host_id": "nope",
        },
    )
    assert r.status_code == 400 and r.json()["code"] == "unknown_host", r.text


def test_a_found_server_is_given_to_the_project_that_uses_it(flat_world: World, node: Node) -> None:
    w = flat_world
    host = add_host(w, node)
    w.worker.drain()
    web = servers_of(w.admin, host["id"])["web-template"]
    member_b = w.add_user("mem-b", "member", "p0b")
    assert member_b.get(f"/servers/{web['id']}").status_code == 404
    # A member cannot move servers; the sysadmin can.
    member_a = w.add_user("mem-a", "member", "p0a")
    r = member_a.post(f"/servers/{web['id']}/change-project", {"project_id": w.projects["p0b"]})
    assert r.status_code == 403, r.text
    r = w.admin.post(f"/servers/{web['id']}/change-project", {"project_id": "nope"})
    assert r.status_code == 400 and r.json()["code"] == "unknown_project"
    r = w.admin.post(f"/servers/{web['id']}/change-project", {"project_id": w.projects["p0b"]})
    assert r.status_code == 200 and r.json()["project_id"] == w.projects["p0b"], r.text
    assert member_b.get(f"/servers/{web['id']}").json()["name"] == "web-template"
    # Later syncs keep the project it was given.
    sync(w, host["id"])
    assert servers_of(w.admin, host["id"])["web-template"]["project_id"] == w.projects["p0b"]
    logs = w.admin.get("/logs", params={"obj_type": "server", "scope": "system"}).json()
    assert any(e["action"] == "change_project" for e in logs["items"]), logs


def test_a_domain_the_service_is_building_is_not_found_as_a_new_server(
    flat_world: World, node: Node
) -> None:
    """The domain of a VM being built carries the server's id as its UUID before the build
    records it: a sync in between must not take it for a domain found on the host."""
    import uuid as uuidlib

    w = flat_world
    host = add_host(w, node)
    r = w.admin.post(
        "/servers",
        {
            "name": "vm",
            "project_id": w.projects["p0a"],
            "disks": [{"size_mb": 8}],
            "host_id": host["id"],
        },
    )
    assert r.status_code == 202, r.text
    vm = r.json()
    node.put("vm", str(uuidlib.UUID(vm["id"])), 5)
    w.worker.drain()  # the build (which the mock hypervisor cannot take) and the syncs
    r = w.admin.get("/servers", params={"host_id": host["id"], "scope": "system", "limit": 100})
    named = [s for s in r.json()["items"] if s["name"] == "vm"]
    assert [(s["id"], s["created_here"]) for s in named] == [(vm["id"], True)]
