"""虚拟机 (create from a host image, 保存镜像 with progress), 系统镜像 (upload, compose),
the admin pages, and an English smoke run."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.e2e.conftest import (
    Api,
    Seeder,
    copy_to_docs,
    goto,
    login,
    modal,
    modal_ok,
    option,
    row,
    row_menu,
    search,
    shot,
    wait_until,
)

SLOW = 480_000  # ms: creating and saving VMs launch libguestfs (on TCG: minutes under load)


def _server_row(page: Any, name: str) -> Any:
    return page.locator(f"[data-testid=servers-table] tr:has([data-name='{name}'])").first


def test_vm_create_from_host_image_and_save(page: Any, seed: Seeder, alice_api: Api) -> None:
    template = seed.host_image("tmpl", disks=2)
    vm = f"vm-{uuid.uuid4().hex[:6]}"
    login(page, "alice")
    page.click("[data-testid=nav-servers]")
    page.click("[data-testid=server-create]")
    dlg = modal(page, "dlg-create-server")
    dlg.locator("[data-testid=create-name]").fill(vm)
    dlg.locator("[data-testid=create-source-host-image]").click()
    dlg.locator("[data-testid=create-host-image]").click()
    dlg.locator("[data-testid=create-host-image] input").fill(template["name"])
    option(page, template["name"]).click()
    dlg.locator("[data-testid=create-hostname]").fill(vm)
    dlg.locator("[data-testid=create-password]").fill("e2e-secret-pass")
    shot(page, "dialog-create-vm")
    modal_ok(page, "dlg-create-server")
    page.locator(".dlg-create-server [data-testid=create-done]").wait_for(timeout=SLOW)
    modal_ok(page, "dlg-create-server")
    page.locator(".dlg-create-server .ant-modal").wait_for(state="hidden")
    server = _server_row(page, vm)
    wait_until(lambda: "已关机" in server.inner_text(), timeout=60)
    assert template["name"] in server.inner_text()
    shot_path = shot(page, "servers")
    copy_to_docs(shot_path)

    # 保存镜像: name, description, 删除保护, auto start; progress until done
    image_name = f"{vm}-saved"
    server.locator("[data-testid=server-save]").click()
    dlg = modal(page, "dlg-save-image")
    dlg.locator("[data-testid=save-name]").fill(image_name)
    dlg.locator("[data-testid=save-description]").fill("saved by the e2e test")
    assert dlg.locator("[data-testid=save-protected]").get_attribute("aria-checked") == "true"
    modal_ok(page, "dlg-save-image")
    dlg.locator("[data-testid=save-progress-bar]").wait_for()
    shot_path = shot(page, "dialog-save-image-progress")
    copy_to_docs(shot_path)
    dlg.locator("[data-testid=save-done]").wait_for(timeout=SLOW)
    dlg.locator("[data-testid=save-view-image]").click()
    page.wait_for_selector(f"[data-testid=detail-name] >> text={image_name}")
    hid = page.url.split("/host-images/")[1].split("?")[0]
    got = alice_api.host_image(hid)
    assert got["status"] == "active" and got["protected"] is True
    assert got["sub_image_count"] == 2 and got["source_server_id"]
    page.locator("[data-testid=detail-tabs] .ant-tabs-tab >> text=任务").click()
    tasks = page.locator("[data-testid=tasks-table]")
    tasks.locator("text=保存主机镜像").wait_for()
    assert tasks.locator(".ant-progress-status-success").count() == 1
    shot(page, "host-image-tasks")
    # the running VM cannot be saved: disabled with the reason
    page.click("[data-testid=nav-servers]")
    server = _server_row(page, vm)
    server.locator("[data-testid=server-power]").click()
    wait_until(lambda: "运行中" in _server_row(page, vm).inner_text())
    save = _server_row(page, vm).locator("[data-testid=server-save]")
    assert save.get_attribute("data-disabled-reason") == "虚拟机需处于关机状态才能保存镜像"


def test_system_image_upload_and_compose(page: Any, tmp_path: Path, alice_api: Api) -> None:
    disk = tmp_path / "upload-root.raw"
    data = bytearray(2 * 1024 * 1024)
    data[510:512] = b"\x55\xaa"
    disk.write_bytes(bytes(data))
    name = f"up-{uuid.uuid4().hex[:6]}"
    login(page, "alice")
    page.click("[data-testid=nav-system-images]")
    page.click("[data-testid=image-upload]")
    dlg = modal(page, "dlg-upload")
    dlg.locator("[data-testid=upload-file]").set_input_files(str(disk))
    dlg.locator("[data-testid=upload-name]").fill(name)
    page.locator("[data-testid=upload-format]").click()
    option(page, "raw").click()
    modal_ok(page, "dlg-upload")
    page.locator(".dlg-upload .ant-progress-status-success").wait_for(timeout=60_000)
    shot(page, "dialog-upload")
    modal_ok(page, "dlg-upload")
    page.locator(".dlg-upload .ant-modal").wait_for(state="hidden")
    page.evaluate("window.scrollTo(0, 0)")
    img_row = page.locator(f"[data-testid=images-table] tr:has([data-name='{name}'])").first
    wait_until(lambda: "可用" in img_row.inner_text())
    shot_path = shot(page, "system-images")
    copy_to_docs(shot_path)
    # 组合主机镜像
    img_row.locator(".ant-checkbox-input").check()
    page.click("[data-testid=image-compose]")
    composed = f"{name}-hi"
    modal(page, "dlg-compose").locator("[data-testid=compose-name]").fill(composed)
    modal_ok(page, "dlg-compose")
    page.wait_for_selector(f"[data-testid=detail-name] >> text={composed}")
    hid = page.url.split("/host-images/")[1].split("?")[0]
    assert alice_api.host_image(hid)["sub_images"][0]["size"] == len(data)
    # a mislabelled upload is refused with the inspector's reason in Chinese
    page.click("[data-testid=nav-system-images]")
    page.click("[data-testid=image-upload]")
    dlg = modal(page, "dlg-upload")
    dlg.locator("[data-testid=upload-file]").set_input_files(str(disk))
    dlg.locator("[data-testid=upload-name]").fill(f"{name}-bad")
    page.locator("[data-testid=upload-format]").click()
    option(page, "qcow2").click()
    modal_ok(page, "dlg-upload")
    err = page.locator(".dlg-upload [data-testid=dialog-error]")
    err.wait_for()
    assert "镜像内容与声明的格式不符" in err.inner_text()


def test_admin_pages(page: Any, admin_api: Api) -> None:
    login(page, "admin", view="system")
    for nav, testid, name in [
        ("nav-domains", "domains-table", "admin-domains"),
        ("nav-projects", "projects-table", "admin-projects"),
        ("nav-users", "users-table", "admin-users"),
    ]:
        page.click(f"[data-testid={nav}]")
        page.locator(f"[data-testid={testid}] tbody tr.ant-table-row").first.wait_for()
        shot(page, name)
    assert "alice" in page.locator("[data-testid=users-table]").inner_text()
    page.click("[data-testid=nav-settings]")
    switch = page.locator("[data-testid=setting-three-level]")
    assert switch.get_attribute("aria-checked") == "true"
    page.locator("[data-testid=nav-settings].ant-menu-item-selected").wait_for()
    page.wait_for_timeout(300)  # the menu's highlight moves to 设置
    shot_path = shot(page, "admin-settings")
    copy_to_docs(shot_path)
    # turning three-level permissions off is refused while domain shares exist (409)
    switch.click()
    page.wait_for_selector(".ant-message >> text=仍有")
    assert admin_api.get("/settings")["three_level_permissions"] is True
    # a domain admin has 项目 and 用户 but neither 域 nor 设置
    login(page, "domadmin", view="domain")
    assert page.locator("[data-testid=nav-projects]").count() == 1
    assert page.locator("[data-testid=nav-domains]").count() == 0
    assert page.locator("[data-testid=nav-settings]").count() == 0


def test_english_smoke(page: Any, seed: Seeder) -> None:
    img = seed.host_image("english")
    login(page, "domadmin", view="domain", lang="en")
    assert page.locator(".page-title").inner_text() == "Host images"
    assert page.locator("[data-testid=current-view]").inner_text() == "Domain admin view"
    assert page.locator("[data-testid=nav-host-images]").inner_text() == "Host images"
    search(page, img["name"])
    assert "Not shared" in row(page, img["name"]).inner_text()
    shot(page, "host-image-list-en-domain-view")
    row_menu(page, img["name"], "share")
    dlg = modal(page, "dlg-share")
    assert "Set sharing" in dlg.inner_text()
    dlg.locator("[data-testid=share-mode-project]").click()
    assert "Projects" in dlg.inner_text()
    dlg.locator(".ant-modal-footer .ant-btn:not(.ant-btn-primary)").click()
    row(page, img["name"]).locator("[data-testid=hi-name]").click()
    page.wait_for_selector("[data-testid=detail-tabs] >> text=Operation log")
    assert "Basic information" in page.locator("[data-testid=host-image-detail]").inner_text()
    assert "Multi-cloud images" in page.locator("[data-testid=host-image-detail]").inner_text()
    # the language switch goes back to Chinese without reloading
    page.click("[data-testid=lang-switcher]")
    page.click("[data-testid=lang-zh-CN]")
    page.wait_for_selector("[data-testid=detail-tabs] >> text=操作日志")
    goto(page, "/host-images")
    page.wait_for_selector(".page-title >> text=主机镜像")
