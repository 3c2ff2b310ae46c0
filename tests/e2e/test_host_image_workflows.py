"""The original manual's host-image workflows, click by click, in zh-CN (SPEC F3–F7, seed)."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import (
    TASK_WAIT,
    Api,
    Seeder,
    close_dropdown,
    close_menus,
    login,
    modal,
    modal_ok,
    option,
    pick,
    row,
    row_menu,
    search,
    shot,
    wait_until,
)


def _select_rows(page: Any, names: list[str]) -> None:
    for name in names:
        row(page, name).locator(".ant-checkbox-input").check()


def test_shell_navigation_and_views(page: Any, seed: Seeder, admin_api: Api) -> None:
    """Login, the seed's path 主机/镜像/主机镜像, view switcher, project switcher, list columns.

    Other tests on this server add host images, newest first in the list: more than a page
    of them is made here, so the demo images are never on the first page by chance."""
    for _ in range(21):
        seed.host_image("later")
    login(page, "admin", view="system")
    assert page.locator("[data-testid=current-view]").inner_text() == "管理后台"
    page.click("[data-testid=nav-servers]")
    page.wait_for_selector("[data-testid=servers-page]")
    # 主机 → 镜像 → 主机镜像, oldest first: the demo catalogue
    page.click("[data-testid=nav-host-images]")
    page.wait_for_selector("[data-testid=host-image-table] [data-name^='later-']")
    page.locator("[data-testid=host-image-table] th >> text=创建时间").click()
    page.wait_for_selector("[data-testid=host-image-table] [data-name='centos7-web']")
    page.evaluate(
        "document.querySelectorAll('[data-testid=host-image-table] .ant-table-content,"
        " [data-testid=host-image-table] .ant-table-body').forEach(e => e.scrollTo(0, 0))"
    )
    headers = page.locator("[data-testid=host-image-table] thead th").all_inner_texts()
    for title in ["名称", "状态", "子镜像", "磁盘格式", "大小", "共享范围"]:
        assert any(title in h for h in headers), (title, headers)
    # two values share a cell on two lines: 架构 under 操作系统, 域 under 项目
    for title in ["操作系统 / 架构", "项目 / 域", "创建时间", "操作"]:
        assert any(h.strip() == title for h in headers), (title, headers)
    centos = row(page, "centos7-web")
    assert centos.locator("[data-testid=lock-icon]").count() == 1
    assert "可用" in centos.inner_text()
    assert "项目共享-部分" in centos.inner_text()
    assert "12 MiB" in centos.inner_text()
    # 子镜像 popover
    centos.locator("[data-testid=sub-count]").hover()
    page.wait_for_selector(".ant-popover:visible >> text=centos7-web-data-1")
    shot(page, "host-image-list-1280-sub-images")
    # Sharing to everyone shows as 域共享-全部 with three-level permissions on
    assert "域共享-全部" in row(page, "win2019-base").inner_text()
    # the view switcher offers all three views to a sysadmin
    page.click("[data-testid=view-switcher]")
    page.click("[data-testid=view-option-domain]")
    assert page.locator("[data-testid=current-view]").inner_text() == "域管理后台"
    search(page, "centos7-web")
    # domain east is not the admin's domain view
    box = page.locator("input[data-testid=hi-search], [data-testid=hi-search] input").first
    box.fill("debian12-app")
    box.press("Enter")
    page.wait_for_selector("[data-testid=hi-empty]")
    page.click("[data-testid=view-switcher]")
    page.click("[data-testid=view-option-project]")
    page.wait_for_selector("[data-testid=host-image-page]")
    # project switcher: switch the admin to project dev
    pick(page, "project-switcher", "dev")
    page.wait_for_selector(".ant-message >> text=已切换到项目 dev")
    search(page, "ubuntu22-db")
    shot(page, "host-image-list-project-view")


def test_views_offered_up_to_highest_role(page: Any) -> None:
    login(page, "alice")
    assert page.locator("[data-testid=current-view]").inner_text() == "项目视图"
    assert page.locator("[data-testid=view-switcher]").is_disabled()
    assert page.locator("[data-testid=nav-system]").count() == 0


def test_edit_attributes(page: Any, seed: Seeder, alice_api: Api) -> None:
    """修改属性: 镜像名称, 删除保护, 操作系统, 发行版, 磁盘驱动, 网卡驱动 (系统自动选择…)."""
    img = seed.host_image("edit", protected=True)
    login(page, "alice")
    search(page, img["name"])
    row_menu(page, img["name"], "edit")
    dlg = modal(page, "dlg-edit-attrs")
    assert dlg.locator("[data-testid=attr-name]").input_value() == img["name"]
    assert "系统自动选择" in dlg.locator("[data-testid=attr-disk-driver]").inner_text()
    new_name = img["name"] + "-v2"
    dlg.locator("[data-testid=attr-name]").fill(new_name)
    dlg.locator("[data-testid=attr-protected] >> text=禁用").click()
    dlg.locator("[data-testid=attr-os-type] >> text=Windows").click()
    dlg.locator("[data-testid=attr-distribution] input").fill("Windows Server")
    option(page, "Windows Server").click()
    pick(page, "attr-disk-driver", "virtio")
    pick(page, "attr-net-driver", "e1000")
    dlg.locator("[data-testid=attr-description]").fill("edited in the console")
    shot(page, "dialog-edit-attributes")
    modal_ok(page, "dlg-edit-attrs")
    page.wait_for_selector(f"[data-testid=host-image-table] [data-name='{new_name}']")
    got = alice_api.host_image(img["id"])
    assert got["name"] == new_name
    assert got["protected"] is False
    assert (got["os_type"], got["os_distribution"]) == ("Windows", "Windows Server")
    assert (got["disk_driver"], got["net_driver"]) == ("virtio", "e1000")
    assert got["description"] == "edited in the console"
    assert [s["name"] for s in got["sub_images"]] == [f"{new_name}-root"]
    assert row(page, new_name).locator("[data-testid=lock-icon]").count() == 0
    # A taken name: the dialog stays open and says why, in Chinese.
    row_menu(page, new_name, "edit")
    modal(page, "dlg-edit-attrs").locator("[data-testid=attr-name]").fill("centos7-web")
    modal_ok(page, "dlg-edit-attrs")
    err = page.locator(".dlg-edit-attrs [data-testid=dialog-error]")
    err.wait_for()
    assert "名称已被占用" in err.inner_text()


def test_share_all_five_choices(page: Any, seed: Seeder, admin_api: Api) -> None:
    """设置共享 in 管理后台: 不共享, 项目共享-部分/全部, 域共享-部分/全部 → the SPEC F4 bodies."""
    img = seed.host_image("share5")
    ops = admin_api.id_of("projects", "ops")
    east = admin_api.id_of("domains", "east")
    login(page, "admin", view="system")
    search(page, img["name"])

    def share(mode: str, targets: list[str], expect: str) -> dict[str, Any]:
        row_menu(page, img["name"], "share")
        dlg = modal(page, "dlg-share")
        dlg.locator(f"[data-testid=share-mode-{mode}]").click()
        if targets:
            select = "share-projects" if mode == "project" else "share-domains"
            dlg.locator(f"[data-testid={select}]").click()
            for t in targets:
                option(page, t).click()
            close_dropdown(page, "dlg-share")
        assert expect in dlg.locator("[data-testid=share-preview]").inner_text()
        if mode == "domain" and targets == ["east"]:
            shot(page, "dialog-share")
        modal_ok(page, "dlg-share")
        page.locator(".dlg-share .ant-modal").wait_for(state="hidden")
        return admin_api.host_image(img["id"])

    got = share("project", ["ops"], "项目共享-部分")
    assert (got["share_scope"], got["shared_project_ids"]) == ("project", [ops])
    assert "项目共享-部分" in row(page, img["name"]).inner_text()
    got = share("project", ["全部"], "项目共享-全部")
    assert (got["share_scope"], got["shared_domain_ids"]) == ("domain", [])
    got = share("domain", ["east"], "域共享-部分")
    assert (got["share_scope"], got["shared_domain_ids"]) == ("domain", [east])
    got = share("domain", ["全部"], "域共享-全部")
    assert got["share_scope"] == "system"
    wait_until(lambda: "域共享-全部" in row(page, img["name"]).inner_text())
    got = share("none", [], "不共享")
    assert got["share_scope"] == "none"


def test_share_rules_per_view(page: Any, seed: Seeder) -> None:
    """Sharing only in 管理后台/域管理后台; 域共享 only in 管理后台 (three-level on)."""
    img = seed.host_image("shareview")
    login(page, "alice")
    search(page, img["name"])
    row(page, img["name"]).locator("[data-testid=row-more]").click()
    item = page.locator(".ant-dropdown:visible [data-testid=menu-share]")
    assert "ant-dropdown-menu-item-disabled" in (item.get_attribute("class") or "")
    item.locator("span").first.hover()
    page.wait_for_selector(".ant-tooltip:visible >> text=仅可在管理后台或域管理后台设置共享")
    close_menus(page)
    tb = page.locator("[data-testid=tb-share]")
    assert tb.is_disabled()
    assert tb.get_attribute("data-disabled-reason") == "仅可在管理后台或域管理后台设置共享"
    # the domain admin in 域管理后台 may share to projects but not to domains
    login(page, "domadmin", view="domain")
    search(page, img["name"])
    row_menu(page, img["name"], "share")
    assert page.locator(".dlg-share [data-testid=share-mode-domain] input").is_disabled()


def test_batch_share(page: Any, seed: Seeder, domadmin_api: Api) -> None:
    """批量设置共享: select rows, 设置共享 above the list, per-item results."""
    a, b = seed.host_image("bshare"), seed.host_image("bshare")
    ops = domadmin_api.id_of("projects", "ops")
    login(page, "domadmin", view="domain")
    search(page, "bshare")
    _select_rows(page, [a["name"], b["name"]])
    assert "已选择 2 项" in page.locator("[data-testid=selected-count]").inner_text()
    page.click("[data-testid=tb-share]")
    dlg = modal(page, "dlg-share")
    assert dlg.locator("[data-testid=dialog-targets] .ant-tag").count() == 2
    dlg.locator("[data-testid=share-mode-project]").click()
    pick(page, "share-projects", "ops")
    close_dropdown(page, "dlg-share")
    modal_ok(page, "dlg-share")
    summary = page.locator(".dlg-share [data-testid=batch-summary]")
    summary.wait_for()
    assert "成功 2 项，失败 0 项" in summary.inner_text()
    shot(page, "dialog-batch-results")
    for img in (a, b):
        got = domadmin_api.host_image(img["id"])
        assert (got["share_scope"], got["shared_project_ids"]) == ("project", [ops])
    modal_ok(page, "dlg-share")


def test_change_project_single_and_batch(page: Any, seed: Seeder, domadmin_api: Api) -> None:
    """更改项目 from 更多 and from 批量操作 ▾; shared images are refused (409 shared)."""
    single = seed.host_image("move1")
    m1, m2, shared = (seed.host_image("bmove") for _ in range(3))
    ops = domadmin_api.id_of("projects", "ops")
    domadmin_api.post(
        f"/host-images/{shared['id']}/share", {"scope": "project", "project_ids": [ops]}
    )
    login(page, "domadmin", view="domain")
    search(page, single["name"])
    row_menu(page, single["name"], "changeProject")
    dlg = modal(page, "dlg-change-project")
    assert "Default" in dlg.locator("[data-testid=cp-domain]").inner_text()
    pick(page, "cp-project", "ops")
    shot(page, "dialog-change-project")
    modal_ok(page, "dlg-change-project")
    dlg.wait_for(state="hidden")
    assert domadmin_api.host_image(single["id"])["project_name"] == "ops"
    wait_until(lambda: "ops" in row(page, single["name"]).inner_text())

    search(page, "bmove")
    # a shared row cannot change project: disabled with the reason
    row(page, shared["name"]).locator("[data-testid=row-more]").click()
    item = page.locator(".ant-dropdown:visible [data-testid=menu-changeProject]")
    assert "ant-dropdown-menu-item-disabled" in (item.get_attribute("class") or "")
    item.locator("span").first.hover()
    page.wait_for_selector(".ant-tooltip:visible >> text=仅未共享的镜像可以更改项目")
    close_menus(page)
    _select_rows(page, [m1["name"], m2["name"], shared["name"]])
    page.click("[data-testid=tb-batch]")
    page.click(".ant-dropdown:visible [data-testid=batch-changeProject]")
    dlg = modal(page, "dlg-change-project")
    assert dlg.locator("[data-testid=shared-warning]").count() == 1
    pick(page, "cp-project", "ops")
    modal_ok(page, "dlg-change-project")
    summary = page.locator(".dlg-change-project [data-testid=batch-summary]")
    summary.wait_for()
    assert "成功 2 项，失败 1 项" in summary.inner_text()
    assert "仅未共享的镜像可以更改项目" in page.locator(".dlg-change-project").inner_text()
    assert domadmin_api.host_image(m1["id"])["project_name"] == "ops"
    assert domadmin_api.host_image(shared["id"])["project_name"] == "dev"


def test_protection_single_and_batch(page: Any, seed: Seeder, alice_api: Api) -> None:
    """设置删除保护: 禁用 when the lock icon shows, 启用 when it does not; batch too."""
    img = seed.host_image("prot", protected=True)
    b1, b2 = seed.host_image("bprot"), seed.host_image("bprot")
    login(page, "alice")
    search(page, img["name"])
    assert row(page, img["name"]).locator("[data-testid=lock-icon]").count() == 1
    row_menu(page, img["name"], "protection")
    modal(page, "dlg-protection").locator("[data-testid=protection-disable]").click()
    shot(page, "dialog-protection")
    modal_ok(page, "dlg-protection")
    wait_until(lambda: row(page, img["name"]).locator("[data-testid=lock-icon]").count() == 0)
    assert alice_api.host_image(img["id"])["protected"] is False
    row_menu(page, img["name"], "protection")
    modal(page, "dlg-protection").locator("[data-testid=protection-enable]").click()
    modal_ok(page, "dlg-protection")
    wait_until(lambda: row(page, img["name"]).locator("[data-testid=lock-icon]").count() == 1)

    search(page, "bprot")
    _select_rows(page, [b1["name"], b2["name"]])
    page.click("[data-testid=tb-protection]")
    modal(page, "dlg-protection").locator("[data-testid=protection-enable]").click()
    modal_ok(page, "dlg-protection")
    page.locator(".dlg-protection [data-testid=batch-summary]").wait_for()
    assert "成功 2 项" in page.locator(".dlg-protection [data-testid=batch-summary]").inner_text()
    modal_ok(page, "dlg-protection")
    assert alice_api.host_image(b1["id"])["protected"] is True
    assert alice_api.host_image(b2["id"])["protected"] is True
    wait_until(lambda: row(page, b1["name"]).locator("[data-testid=lock-icon]").count() == 1)
    # and disable both again
    page.click("[data-testid=tb-protection]")
    modal(page, "dlg-protection").locator("[data-testid=protection-disable]").click()
    modal_ok(page, "dlg-protection")
    page.locator(".dlg-protection [data-testid=batch-summary]").wait_for()
    assert alice_api.host_image(b2["id"])["protected"] is False


def test_delete_single_and_batch(page: Any, seed: Seeder, alice_api: Api) -> None:
    """删除: protected images cannot be deleted (disabled with a reason; refused in a batch)."""
    gone = seed.host_image("del1")
    locked = seed.host_image("del2", protected=True)
    b_ok = seed.host_image("bdel")
    b_locked = seed.host_image("bdel", protected=True)
    login(page, "alice")
    search(page, "del")
    row(page, locked["name"]).locator("[data-testid=row-more]").click()
    item = page.locator(".ant-dropdown:visible [data-testid=menu-delete]")
    assert "ant-dropdown-menu-item-disabled" in (item.get_attribute("class") or "")
    item.locator("span").first.hover()
    page.wait_for_selector(".ant-tooltip:visible >> text=已启用删除保护，无法删除")
    close_menus(page)

    row_menu(page, gone["name"], "delete")
    dlg = modal(page, "dlg-delete")
    assert gone["name"] in dlg.locator("[data-testid=delete-list]").inner_text()
    assert "确认删除以下 1 个主机镜像" in dlg.inner_text()
    modal_ok(page, "dlg-delete")
    wait_until(lambda: row(page, gone["name"]).count() == 0, timeout=TASK_WAIT)

    _select_rows(page, [b_ok["name"], b_locked["name"]])
    page.click("[data-testid=tb-delete]")
    dlg = modal(page, "dlg-delete")
    assert dlg.locator("[data-testid=delete-will-fail]").count() == 1
    shot(page, "dialog-delete")
    modal_ok(page, "dlg-delete")
    summary = page.locator(".dlg-delete [data-testid=batch-summary]")
    summary.wait_for()
    assert "成功 1 项，失败 1 项" in summary.inner_text()
    assert "已启用删除保护，请先禁用删除保护" in page.locator(".dlg-delete").inner_text()
    modal_ok(page, "dlg-delete")
    wait_until(lambda: row(page, b_ok["name"]).count() == 0, timeout=TASK_WAIT)
    assert alice_api.host_image(b_locked["id"])["status"] == "active"


def test_viewer_sees_disabled_actions(page: Any) -> None:
    login(page, "victor")
    search(page, "centos7-web")
    r = row(page, "centos7-web")
    edit = r.locator("[data-testid=row-edit]")
    assert edit.is_disabled()
    r.locator("[data-testid=row-more]").click()
    for key in ("edit", "protection", "delete", "changeProject", "share"):
        item = page.locator(f".ant-dropdown:visible [data-testid=menu-{key}]")
        assert "disabled" in (item.get_attribute("class") or ""), key
