"""宿主机 (compute hosts, SPEC §9.2) in the console: an administrator adds libvirt hosts (the
test driver, an address nobody answers on, the real daemon), syncs them and finds their
domains in the VM list with their host; other users have no 宿主机 menu; a VM found on a host
cannot be deleted until its domain is gone; a VM created on the real daemon shows 关机中 while
its graceful shutdown runs, then 缺失 once its domain is undefined behind the service's back."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import (
    TASK_WAIT,
    Api,
    close_dropdown,
    copy_to_docs,
    goto,
    login,
    modal,
    modal_ok,
    option,
    pick,
    shot,
    wait_until,
)
from tests.e2e.test_layout_and_views import assert_readable, fits
from tests.libvirt_env import (  # noqa: F401 (fixtures)
    DiskSpec,
    Domains,
    Pool,
    libvirt_daemon,
    libvirt_domains,
    libvirt_pool,
    remove_domain,
    unique_name,
)

TEST_URI = "test:///default"  # libvirt's mock hypervisor: one running domain named "test"
DEAD_URI = "qemu+tcp://127.0.0.1:1/system"  # nothing listens on port 1
WAIT = TASK_WAIT * 1000  # ms: syncs queue behind the demo's VM builds
HOSTS = "[data-testid=hosts-table]"
SERVERS = "[data-testid=servers-table]"
HOST_COLUMNS = ["status", "poolNetwork", "servers", "versions", "syncedAt"]
SERVER_COLUMNS = ["status", "host", "os", "disks", "hostImage", "created"]


def _host_row(page: Any, name: str) -> Any:
    return page.locator(f"{HOSTS} tr:has([data-name='{name}'])").first


def _server_row(page: Any, name: str) -> Any:
    return page.locator(f"{SERVERS} tr:has([data-name='{name}'])").first


def _fill_host_dialog(page: Any, name: str, uri: str, pool: str, project: str = "dev") -> Any:
    """Open 添加宿主机 (on the 宿主机 page) and fill it in; returns the dialog."""
    page.click("[data-testid=host-add]")
    dlg = modal(page, "dlg-host")
    dlg.locator("[data-testid=host-name]").fill(name)
    dlg.locator("[data-testid=host-uri] input").fill(uri)
    if page.locator(".ant-select-dropdown:visible").count():  # the URI completions
        close_dropdown(page, "dlg-host")
    pick(page, "host-project", project)
    dlg.locator("[data-testid=host-pool]").fill(pool)
    return dlg


def _synced(page: Any, name: str) -> bool:
    """The row shows a finished sync: a date (YYYY-MM-DD) in 上次同步, no sync running."""
    cell = _host_row(page, name).locator("td[data-col=syncedAt]")
    return not cell.locator("[data-testid=host-syncing]").count() and "-" in cell.inner_text()


def _no_messages(page: Any) -> None:
    """Wait for the messages at the top to go (before a screenshot for the docs)."""
    wait_until(lambda: not page.locator(".ant-message-notice").count(), timeout=15)


def _filter_by_host(page: Any, label: str) -> None:
    with page.expect_response(lambda r: "/api/v1/servers?" in r.url and "host_id=" in r.url):
        pick(page, "server-host-filter", label)


def test_admin_adds_a_host_syncs_and_finds_its_domain(page: Any, admin_api: Api) -> None:
    name = f"lv-{uuid.uuid4().hex[:6]}"
    login(page, "admin", view="system")
    page.click("[data-testid=nav-hosts]")
    page.wait_for_selector(f"{HOSTS} [data-name=builtin]")
    builtin = _host_row(page, "builtin")
    assert "内置" in builtin.inner_text() and "已连接" in builtin.inner_text()
    assert builtin.locator("[data-testid=host-builtin-actions]").count() == 1
    assert builtin.locator("[data-testid=host-edit]").count() == 0

    # 添加宿主机, with the URI examples
    dlg = _fill_host_dialog(page, name, TEST_URI, "default-pool")
    help_text = dlg.locator("[data-testid=host-uri-help]").inner_text()
    for example in ("qemu:///system", "qemu+ssh://user@host/system", "qemu+tcp://host/system"):
        assert example in help_text
    copy_to_docs(shot(page, "dialog-add-host"))
    modal_ok(page, "dlg-host")
    dlg.wait_for(state="hidden")
    page.wait_for_selector(".ant-message >> text=已添加宿主机")
    row = _host_row(page, name)
    assert "已连接" in row.inner_text()
    assert row.locator("[data-testid=host-uri-cell]").inner_text() == TEST_URI
    [host] = [h for h in admin_api.get("/hosts")["items"] if h["name"] == name]
    libvirt_version = host["versions"]["libvirt"]
    assert libvirt_version and host["versions"]["hypervisor"]
    assert f"libvirt {libvirt_version}" in row.locator("[data-testid=host-libvirt]").inner_text()
    assert (
        host["versions"]["hypervisor"] in row.locator("[data-testid=host-hypervisor]").inner_text()
    )
    # the sync queued by the add runs (the row shows it), then 上次同步 has a date
    wait_until(lambda: _synced(page, name), timeout=TASK_WAIT)

    # 同步 again: the row shows the task until it ends
    row.locator("[data-testid=host-sync]").click()
    page.wait_for_selector(".ant-message >> text=已开始同步")
    page.wait_for_selector(".ant-message >> text=同步完成", timeout=WAIT)
    wait_until(lambda: not _host_row(page, name).locator("[data-testid=host-syncing]").count())
    wait_until(
        lambda: _host_row(page, name).locator("[data-testid=host-servers]").inner_text() == "1"
    )
    assert_readable(page, HOSTS, HOST_COLUMNS)
    assert fits(page, HOSTS)
    _no_messages(page)
    copy_to_docs(shot(page, "hosts"))

    # the host's VM count leads to the VM list filtered by that host: the domain "test"
    _host_row(page, name).locator("[data-testid=host-servers]").click()
    page.wait_for_selector(f"{SERVERS} [data-name=test]")
    assert f"host_id={host['id']}" in page.url
    assert page.locator(f"{SERVERS} tbody tr.ant-table-row").count() == 1
    vm = _server_row(page, "test")
    assert vm.locator("[data-testid=server-host]").inner_text() == name
    assert vm.locator("[data-testid=server-found]").inner_text() == "纳管"
    assert "运行中" in vm.inner_text() and "vda" in vm.inner_text()
    # not created here: delete is disabled with the way to remove it
    delete = vm.locator("[data-testid=server-delete]")
    assert delete.is_disabled()
    reason = delete.get_attribute("data-disabled-reason") or ""
    assert "不是本服务创建的" in reason and "undefine" in reason
    delete.locator("xpath=..").hover()
    page.wait_for_selector(".ant-tooltip:visible >> text=undefine")
    copy_to_docs(shot(page, "servers-found-on-host"))
    # 关机: a task on the host (a graceful shutdown); the list says when it is done
    vm.locator("[data-testid=server-power]").click()
    page.wait_for_selector(".ant-message >> text=虚拟机 test 已关机", timeout=WAIT)
    wait_until(lambda: "已关机" in _server_row(page, "test").inner_text())
    assert _server_row(page, "test").locator("[data-testid=server-save]").is_enabled()
    assert _server_row(page, "test").locator("[data-testid=server-delete]").is_disabled()
    # …and the API refuses a delete with the same explanation (409 not_created_here)
    [server] = [s for s in admin_api.get("/servers", scope="system", host_id=host["id"])["items"]]
    assert server["created_here"] is False and server["external_id"]
    r = httpx.delete(
        f"{admin_api.base}/api/v1/servers/{server['id']}",
        headers={"Authorization": f"Bearer {admin_api.token}"},
        timeout=30,
    )
    assert r.status_code == 409 and r.json()["code"] == "not_created_here", r.text

    # the host filter of the whole list
    goto(page, "/servers")
    page.wait_for_selector(f"{SERVERS} [data-name]")
    _filter_by_host(page, name)
    wait_until(lambda: page.locator(f"{SERVERS} tbody tr.ant-table-row").count() == 1)
    assert _server_row(page, "test").count() == 1
    _filter_by_host(page, "内置")
    page.wait_for_selector(f"{SERVERS} [data-name=db-01]")
    assert _server_row(page, "test").count() == 0
    for cell in page.locator(f"{SERVERS} [data-testid=server-host]").all():
        assert cell.inner_text() == "内置"
    page.set_viewport_size({"width": 1440, "height": 900})
    assert_readable(page, SERVERS, SERVER_COLUMNS)


def test_an_unreachable_host_shows_why(page: Any, admin_api: Api) -> None:
    name = f"down-{uuid.uuid4().hex[:6]}"
    login(page, "admin", view="system")
    page.click("[data-testid=nav-hosts]")
    page.wait_for_selector(f"{HOSTS} [data-name=builtin]")
    _fill_host_dialog(page, name, DEAD_URI, "default")
    modal_ok(page, "dlg-host")
    # added all the same, with the reason
    page.wait_for_selector(".ant-message >> text=已添加宿主机")
    assert "无法连接" in page.locator(".ant-message").inner_text()
    row = _host_row(page, name)
    assert "无法连接" in row.locator("td[data-col=status] .ant-tag").inner_text()
    reason = row.locator("[data-testid=status-reason]")
    assert "127.0.0.1:1" in (reason.get_attribute("title") or "")
    shot(page, "hosts-unreachable")
    # a new VM cannot go there: the host is offered disabled, with the reason
    page.click("[data-testid=nav-servers]")
    page.click("[data-testid=server-create]")
    dlg = modal(page, "dlg-create-server")
    dlg.locator("[data-testid=create-host]").click()
    item = page.locator(
        f".ant-select-dropdown:visible .ant-select-item-option:has-text('{name}')"
    ).first
    assert "ant-select-item-option-disabled" in (item.get_attribute("class") or "")
    assert "无法连接" in item.inner_text() and "127.0.0.1:1" in item.inner_text()
    shot(page, "dialog-create-vm-hosts")
    close_dropdown(page, "dlg-create-server")
    # the built-in host stays chosen; vCPUs and memory are for libvirt hosts only
    assert "内置" in dlg.locator("[data-testid=create-host]").inner_text()
    assert dlg.locator("[data-testid=create-vcpus]").count() == 0
    dlg.locator(".ant-modal-footer .ant-btn:not(.ant-btn-primary)").click()
    # delete it: asked first, then gone
    page.click("[data-testid=nav-hosts]")
    _host_row(page, name).locator("[data-testid=host-delete]").click()
    page.locator(".dlg-host-delete .ant-btn-dangerous").click()
    page.wait_for_selector(".ant-message >> text=已删除宿主机")
    wait_until(lambda: _host_row(page, name).count() == 0)
    assert not [h for h in admin_api.get("/hosts")["items"] if h["name"] == name]


def test_hosts_are_for_system_administrators(page: Any) -> None:
    login(page, "alice")
    assert page.locator("[data-testid=nav-servers]").count() == 1
    assert page.locator("[data-testid=nav-hosts]").count() == 0
    goto(page, "/system/hosts")
    page.wait_for_selector("[data-testid=hosts-forbidden]")
    assert page.locator(HOSTS).count() == 0
    login(page, "domadmin", view="domain")
    assert page.locator("[data-testid=nav-projects]").count() == 1
    assert page.locator("[data-testid=nav-hosts]").count() == 0
    # the VM list still names the hosts and filters by them
    page.click("[data-testid=nav-servers]")
    page.wait_for_selector(f"{SERVERS} [data-testid=server-host]")
    page.locator("[data-testid=server-host-filter]").click()
    option(page, "内置").wait_for()


def test_a_vm_on_a_libvirt_host_from_creation_to_missing(
    page: Any,
    admin_api: Api,
    libvirt_daemon: Any,  # noqa: F811
    libvirt_pool: Pool,  # noqa: F811
    libvirt_domains: Domains,  # noqa: F811
    tmp_path: Path,
) -> None:
    """On the real daemon: a VM created there (vCPUs, memory, started at once), 关机中 while
    its graceful shutdown runs, deleted with its domain; a domain defined beside the service
    is found by a sync, cannot be deleted, and reads 缺失 once it is undefined — then it can."""
    name = f"qemu-{uuid.uuid4().hex[:6]}"
    project = admin_api.id_of("projects", "dev")
    host = admin_api.post(
        "/hosts",
        {
            "name": name,
            "uri": libvirt_daemon.uri,
            "project_id": project,
            "storage_pool": libvirt_pool.name,
        },
    )
    assert host["status"] == "connected", host
    vm = unique_name("vm")
    try:
        _vm_lifecycle(page, admin_api, host, vm, libvirt_domains, tmp_path)
    finally:
        for s in admin_api.get("/servers", scope="system", host_id=host["id"])["items"]:
            if s["created_here"]:
                if s["external_id"]:
                    libvirt_domains.adopt(s["external_id"])
                httpx.delete(
                    f"{admin_api.base}/api/v1/servers/{s['id']}",
                    headers={"Authorization": f"Bearer {admin_api.token}"},
                    timeout=30,
                )
        httpx.delete(
            f"{admin_api.base}/api/v1/hosts/{host['id']}",
            headers={"Authorization": f"Bearer {admin_api.token}"},
            timeout=30,
        )


def _vm_lifecycle(
    page: Any, admin_api: Api, host: dict[str, Any], vm: str, domains: Domains, tmp: Path
) -> None:
    name = host["name"]
    login(page, "admin", view="system")
    page.click("[data-testid=nav-servers]")
    page.click("[data-testid=server-create]")
    dlg = modal(page, "dlg-create-server")
    dlg.locator("[data-testid=create-name]").fill(vm)
    assert dlg.locator("[data-testid=create-vcpus]").count() == 0  # built-in by default
    pick(page, "create-host", name)
    dlg.locator("input[data-testid=create-vcpus]").fill("2")
    dlg.locator("input[data-testid=create-memory]").fill("128")
    dlg.locator("[data-testid=create-start]").click()
    dlg.locator("input[data-testid=blank-disk-0]").fill("64")
    copy_to_docs(shot(page, "dialog-create-vm-libvirt"))
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/servers")) as req:
        modal_ok(page, "dlg-create-server")
    body = req.value.post_data_json
    assert (body["host_id"], body["start"], body["vcpus"], body["memory_mb"]) == (
        host["id"],
        True,
        2,
        128,
    )
    page.locator(".dlg-create-server [data-testid=create-done]").wait_for(timeout=WAIT)
    modal_ok(page, "dlg-create-server")
    row = _server_row(page, vm)
    wait_until(lambda: "运行中" in _server_row(page, vm).inner_text(), timeout=TASK_WAIT)
    assert row.locator("[data-testid=server-host]").inner_text() == name
    assert row.locator("[data-testid=server-found]").count() == 0
    # Linux on KVM: disks on virtio-scsi (sda…)
    assert "sda 64 MiB" in row.locator("[data-testid=server-disks]").inner_text()

    # 关机: a graceful shutdown (a guest without an OS ignores it: forced after the timeout)
    row.locator("[data-testid=server-power]").click()
    page.locator(f"{SERVERS} tr:has([data-name='{vm}']) [data-status=stopping]").wait_for()
    power = _server_row(page, vm).locator("[data-testid=server-power]")
    assert "正在关机" in (power.get_attribute("data-disabled-reason") or "")
    copy_to_docs(shot(page, "servers-stopping"))
    page.wait_for_selector(f".ant-message >> text=虚拟机 {vm} 已关机", timeout=WAIT)
    wait_until(lambda: "已关机" in _server_row(page, vm).inner_text())

    # a domain defined beside the service: found by a sync, then undefined behind its back
    disk = tmp / "found.raw"
    disk.write_bytes(b"\0" * (1 << 20))
    found_uuid, found = domains.define([DiskSpec("vda", path=disk)])
    sync = admin_api.post(f"/hosts/{host['id']}/sync")
    _wait_task(admin_api, sync["task_id"])
    goto(page, f"/servers?host_id={host['id']}")
    page.wait_for_selector(f"{SERVERS} [data-name='{found}']")
    assert _server_row(page, found).locator("[data-testid=server-found]").count() == 1
    assert _server_row(page, found).locator("[data-testid=server-delete]").is_disabled()
    remove_domain(domains.conn.lookupByUUIDString(found_uuid))
    sync = admin_api.post(f"/hosts/{host['id']}/sync")
    _wait_task(admin_api, sync["task_id"])
    page.click("[data-testid=server-refresh]")
    wait_until(lambda: "缺失" in _server_row(page, found).inner_text())
    reason = _server_row(page, found).locator("[data-testid=status-reason]")
    assert reason.inner_text() == "宿主机上已没有它的域"
    _no_messages(page)
    copy_to_docs(shot(page, "servers-missing"))
    # now it can go: only its record is removed
    _server_row(page, found).locator("[data-testid=server-delete]").click()
    assert "只移除虚拟机记录" in page.locator(".ant-modal-confirm").inner_text()
    page.locator(".ant-modal-confirm .ant-btn-dangerous").click()
    wait_until(lambda: _server_row(page, found).count() == 0)

    # our own VM: its domain and volume go with it
    [ours] = [s for s in admin_api.get("/servers", scope="system", name=vm)["items"]]
    domains.adopt(ours["external_id"])
    _server_row(page, vm).locator("[data-testid=server-delete]").click()
    assert name in page.locator(".ant-modal-confirm").inner_text()
    page.locator(".ant-modal-confirm .ant-btn-dangerous").click()
    wait_until(lambda: _server_row(page, vm).count() == 0)
    import libvirt

    def domain_gone() -> bool:
        try:
            domains.conn.lookupByUUIDString(ours["external_id"])
        except libvirt.libvirtError:
            return True
        return False

    wait_until(domain_gone, timeout=TASK_WAIT)


def _wait_task(api: Api, task_id: str) -> None:
    def ended() -> bool:
        return api.get(f"/tasks/{task_id}")["status"] in ("succeeded", "failed")

    wait_until(ended, timeout=TASK_WAIT)
    assert api.get(f"/tasks/{task_id}")["status"] == "succeeded"


def test_hosts_in_english_fit_from_1280(page: Any, admin_api: Api) -> None:
    """The 宿主机 page and the VM list with its host column read in English, and every column
    of the hosts table fits beside the navigation from 1280 px in both languages."""
    project = admin_api.id_of("projects", "dev")
    tag = uuid.uuid4().hex[:6]
    for name, uri in ((f"en-{tag}", TEST_URI), (f"en-down-{tag}", DEAD_URI)):
        body = {"name": name, "uri": uri, "project_id": project, "storage_pool": "default-pool"}
        admin_api.post("/hosts", body)
    login(page, "admin", view="system", lang="en")
    assert page.locator("[data-testid=nav-hosts]").inner_text() == "Hosts"
    page.click("[data-testid=nav-hosts]")
    page.wait_for_selector(f"{HOSTS} [data-name='en-down-{tag}']")
    assert page.locator(".page-title").inner_text() == "Hosts"
    assert "Add host" in page.locator("[data-testid=host-add]").inner_text()
    assert "Built-in" in _host_row(page, "builtin").inner_text()
    assert "Connected" in _host_row(page, f"en-{tag}").inner_text()
    assert "Unreachable" in _host_row(page, f"en-down-{tag}").inner_text()
    for lang in ("en", "zh-CN"):
        if lang == "zh-CN":
            page.evaluate("localStorage.setItem('hostimage.lang', 'zh-CN')")
            page.reload()
            page.wait_for_selector(f"{HOSTS} [data-name='en-down-{tag}']")
        for width in (1280, 1440, 1920):
            page.set_viewport_size({"width": width, "height": 900})
            assert_readable(page, HOSTS, HOST_COLUMNS)
            assert fits(page, HOSTS), (lang, width)
        page.set_viewport_size({"width": 1280, "height": 800})
        shot_path = shot(page, f"hosts-{lang}")
        if lang == "en":
            copy_to_docs(shot_path)
    # the VM list in English, 1440 px: the host column and the filter
    page.evaluate("localStorage.setItem('hostimage.lang', 'en')")
    goto(page, "/servers")
    page.reload()
    page.wait_for_selector(f"{SERVERS} [data-testid=server-host]")
    assert page.locator(f"{SERVERS} th[data-col=host]").inner_text() == "Host"
    page.set_viewport_size({"width": 1440, "height": 900})
    assert_readable(page, SERVERS, SERVER_COLUMNS)
    assert fits(page, SERVERS)
    shot(page, "servers-en")
