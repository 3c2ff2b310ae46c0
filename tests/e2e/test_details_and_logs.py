"""查看主机镜像详情: the detail page, 子镜像 and 操作日志 tabs (SPEC F8–F10), list paging."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import date, timedelta
from typing import Any

from tests.e2e.conftest import (
    ARTIFACTS,
    TASK_WAIT,
    Api,
    Seeder,
    copy_to_docs,
    goto,
    login,
    modal,
    modal_ok,
    row,
    search,
    shot,
    wait_until,
)


def _open_detail(page: Any, name: str) -> None:
    search(page, name)
    row(page, name).locator("[data-testid=hi-name]").click()
    page.wait_for_selector("[data-testid=detail-name]")


def test_details_fields_and_protection_switch(page: Any, seed: Seeder, alice_api: Api) -> None:
    img = seed.host_image("detail", disks=2, protected=True, min_ram_mb=2048, hypervisor="kvm")
    login(page, "alice")
    _open_detail(page, img["name"])
    assert page.locator("[data-testid=detail-name]").inner_text() == img["name"]
    basic = page.locator("[data-testid=section-basic]").inner_text()
    for text in ["云上ID", "ID", img["id"], "名称", "状态", "可用", "域", "Default", "项目", "dev"]:
        assert text in basic, text
    for text in ["共享范围", "不共享", "类型", "自定义镜像", "子镜像", "大小", "2 MiB", "创建时间"]:
        assert text in basic, text
    assert "更新时间" in basic and "备注" in basic and f"e2e {img['name'][:6]}" in basic
    props = page.locator("[data-testid=section-props]").inner_text()
    for text in ["磁盘格式", "raw", "系统语言", "最小内存要求", "2 GiB", "最小磁盘要求", "1 MiB"]:
        assert text in props, text
    for text in ["磁盘驱动", "系统自动选择", "网卡驱动", "应用平台", "kvm", "Debian"]:
        assert text in props, text
    formats = page.locator("[data-testid=formats-table]").inner_text()
    assert "校验和" in formats and "sha256:" in formats and "原始格式" in formats
    assert page.locator("[data-testid=formats-table] tbody tr").count() == 2
    shot_path = shot(page, "host-image-detail")
    copy_to_docs(shot_path)
    # 其他信息: the 删除保护 switch
    switch = page.locator("[data-testid=protection-switch]")
    assert switch.get_attribute("aria-checked") == "true"
    switch.click()
    wait_until(lambda: alice_api.host_image(img["id"])["protected"] is False)
    assert page.locator("[data-testid=detail-lock]").count() == 0
    # header actions are the list's: 修改属性 from the header
    page.click("[data-testid=hd-edit]")
    modal(page, "dlg-edit-attrs").locator("[data-testid=attr-description]").fill("from detail")
    modal_ok(page, "dlg-edit-attrs")
    page.wait_for_selector("[data-testid=detail-description] >> text=from detail")


def test_sub_images_tab(page: Any, seed: Seeder) -> None:
    img = seed.host_image("subs", disks=3)
    login(page, "alice")
    goto(page, f"/host-images/{img['id']}")
    page.locator("[data-testid=detail-tabs] .ant-tabs-tab >> text=子镜像").click()
    table = page.locator("[data-testid=sub-images-table]")
    table.locator("tbody tr").nth(2).wait_for()
    headers = table.locator("thead th").all_inner_texts()
    for title in ["镜像名称", "类别", "格式", "大小", "状态", "创建时间"]:
        assert title in headers, (title, headers)
    roles = table.locator("[data-testid=sub-role]").all_inner_texts()
    assert roles == ["系统盘", "数据盘", "数据盘"]
    names = [r.split("\t")[1] for r in table.locator("tbody tr").all_inner_texts()]
    assert names == [f"{img['name']}-root", f"{img['name']}-data-1", f"{img['name']}-data-2"]
    shot(page, "host-image-sub-images")


def test_logs_tab_load_more_detail_filter_export(page: Any, seed: Seeder, alice_api: Api) -> None:
    img = seed.host_image("logs")
    for i in range(25):
        alice_api.patch(f"/host-images/{img['id']}", {"description": f"rev {i}"})
    login(page, "alice")
    goto(page, f"/host-images/{img['id']}?tab=logs")
    rows = page.locator("[data-testid=logs-table] tbody tr.ant-table-row")
    wait_until(lambda: rows.count() == 20)
    assert "已加载 20 条" in page.locator("[data-testid=logs-loaded]").inner_text()
    shot_path = shot(page, "host-image-logs")
    copy_to_docs(shot_path)
    # 加载更多: 25 updates + 1 create
    page.click("[data-testid=logs-load-more]")
    wait_until(lambda: rows.count() == 26)
    page.wait_for_selector("[data-testid=logs-no-more]")
    actions = page.locator("[data-testid=log-action]").all_inner_texts()
    assert actions[0] == "修改属性" and actions[-1] == "创建"
    # 查看: detail with pretty JSON, previous/next
    rows.nth(0).locator("[data-testid=log-view]").click()
    notes = page.locator(".dlg-log-detail [data-testid=log-notes]")
    wait_until(lambda: '"rev 24"' in notes.inner_text())
    assert '\n  "changes": {' in notes.inner_text()
    shot(page, "dialog-log-detail")
    page.click(".dlg-log-detail [data-testid=log-copy]")
    page.wait_for_selector(".ant-message >> text=已复制")
    page.click(".dlg-log-detail [data-testid=log-next]")
    wait_until(lambda: '"rev 23"' in notes.inner_text())
    page.click(".dlg-log-detail [data-testid=log-prev]")
    wait_until(lambda: '"rev 24"' in notes.inner_text())
    page.click(".dlg-log-detail [data-testid=log-close]")
    # 开始日期 / 结束日期: tomorrow has nothing, today has everything (local dates)
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    today = date.today().isoformat()
    page.fill("input[data-testid=logs-start]", tomorrow)
    page.fill("input[data-testid=logs-end]", tomorrow)
    wait_until(lambda: rows.count() == 0)
    page.fill("input[data-testid=logs-start]", today)
    page.fill("input[data-testid=logs-end]", today)
    wait_until(lambda: rows.count() == 20)
    # 导出: the loaded rows as CSV with a column choice
    page.click("[data-testid=logs-export]")
    dlg = modal(page, "dlg-log-export")
    assert "本页显示的日志（20 条）" in dlg.inner_text()
    dlg.locator("[data-testid=export-all-columns]").click()  # select all
    dlg.locator("[data-testid=export-all-columns]").click()  # none
    for col in ("id", "time", "action", "success", "actor_user_name"):
        dlg.locator(f"[data-col={col}]").click()
    shot(page, "dialog-log-export")
    with page.expect_download() as dl:
        modal_ok(page, "dlg-log-export")
    text = dl.value.path().read_text(encoding="utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["ID", "操作时间", "操作类型", "结果", "发起人"]
    assert len(lines) == 21 and lines[1][3] == "成功" and lines[1][4] == "alice"
    # all matching rows as XLSX
    page.click("[data-testid=logs-export]")
    dlg.locator("[data-testid=export-xlsx]").click()
    dlg.locator("[data-testid=export-scope-all]").click()
    with page.expect_download() as dl:
        modal_ok(page, "dlg-log-export")
    assert dl.value.suggested_filename.endswith(".xlsx")
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(dl.value.path().read_bytes())).active
    assert sheet is not None and sheet.max_row == 27  # header + 26 entries


def test_list_paging_sorting_filters_columns_export(
    page: Any, seed: Seeder, alice_api: Api
) -> None:
    """Server-side paging (20 per page), sorting, filters, the column chooser, list export, and
    the first page rendered within 300 ms of the API's answer."""
    made = [seed.host_image("pg") for _ in range(23)]
    login(page, "alice")
    search(page, "pg-")
    table = page.locator("[data-testid=host-image-table]")
    wait_until(lambda: table.locator("tbody tr.ant-table-row").count() == 20)
    wait_until(lambda: "共 23 条" in page.locator(".ant-pagination").inner_text())

    # Budget: a page of 20 on screen within 300 ms of the API's answer, as the median of five
    # loads. Another test's VM (qemu under libguestfs) may hold the CPU for a while: a round
    # over budget is measured again a little later, for at most about two minutes.
    def load_ms() -> int:
        page.evaluate("window.__hostimagePerf = null")
        page.click("[data-testid=hi-refresh]")
        return int(
            wait_until(lambda: page.evaluate("window.__hostimagePerf"))["hostImageListRenderMs"]
        )

    first = int(
        wait_until(lambda: page.evaluate("window.__hostimagePerf"))["hostImageListRenderMs"]
    )
    rounds = [[first, *(load_ms() for _ in range(4))]]
    while sorted(rounds[-1])[2] > 300 and len(rounds) < 12:
        time.sleep(8)
        rounds.append([load_ms() for _ in range(5)])
    (ARTIFACTS / "perf-host-image-list.json").write_text(json.dumps({"render_ms": rounds}))
    assert sorted(rounds[-1])[2] <= 300, rounds
    requests: list[str] = []
    page.on(
        "request", lambda r: requests.append(r.url) if "/api/v1/host-images?" in r.url else None
    )
    page.locator(".ant-pagination-item-2").click()
    wait_until(lambda: table.locator("tbody tr.ant-table-row").count() == 3)
    assert any("offset=20" in u and "limit=20" in u for u in requests), requests
    # sort by name ascending (server-side)
    page.locator("[data-testid=host-image-table] th >> text=名称").click()
    wait_until(lambda: any("order_by=name" in u and "order=asc" in u for u in requests))
    wait_until(lambda: table.locator("tbody tr.ant-table-row").count() == 20)
    names = sorted(m["name"] for m in made)
    first = table.locator("[data-testid=hi-name]").first.inner_text()
    assert first == names[0]
    # filter: protection enabled → none of these
    page.locator("[data-testid=filter-protected]").click()
    page.locator(".ant-select-dropdown:visible >> text=已启用").click()
    page.wait_for_selector("[data-testid=hi-empty]")
    page.click("[data-testid=filter-reset]")
    # column chooser: hide 磁盘格式
    page.click("[data-testid=hi-columns]")
    page.locator("[data-testid=column-chooser] >> text=磁盘格式").click()
    wait_until(lambda: "磁盘格式" not in table.locator("thead").inner_text())
    page.locator("[data-testid=column-chooser] >> text=磁盘格式").click()
    page.click("[data-testid=hi-refresh]")
    # list export (CSV)
    search(page, "pg-")
    page.click("[data-testid=hi-export]")
    page.locator(".dlg-list-export [data-testid=list-export-scope] >> text=全部匹配").click()
    with page.expect_download() as dl:
        modal_ok(page, "dlg-list-export")
    lines = list(csv.reader(io.StringIO(dl.value.path().read_text(encoding="utf-8-sig"))))
    assert lines[0][0] == "名称" and len(lines) == 24


def test_empty_state_and_error_in_language(page: Any) -> None:
    login(page, "bob", lang="en")
    search_box = page.locator("input[data-testid=hi-search]").first
    search_box.fill("no-such-image-anywhere")
    search_box.press("Enter")
    page.wait_for_selector("[data-testid=hi-empty]")
    assert "No host images yet" in page.locator("[data-testid=hi-empty]").inner_text()
    goto(page, "/host-images/0123456789abcdef0123456789abcdef")
    page.wait_for_selector("[data-testid=detail-not-found]")
    assert "does not exist" in page.locator("[data-testid=detail-not-found]").inner_text()


def test_tasks_tab_lists_tasks_started_elsewhere(
    page: Any, seed: Seeder, alice_api: Api, domadmin_api: Api
) -> None:
    """任务: the tab asks the server (``GET /tasks?target_id=``), so it shows tasks started
    through the API or by another user, not only those of this browser."""
    img = seed.host_image("tasks")
    by_alice = alice_api.post(f"/host-images/{img['id']}/formats", {"format": "qcow2"})
    by_domadmin = domadmin_api.post(f"/host-images/{img['id']}/formats", {"format": "vmdk"})
    login(page, "alice")
    goto(page, f"/host-images/{img['id']}")
    page.wait_for_selector("[data-testid=detail-name]")
    page.locator("[data-testid=detail-tabs] .ant-tabs-tab >> text=任务").click()
    table = page.locator("[data-testid=tasks-table]")
    rows = table.locator("tbody tr.ant-table-row")
    wait_until(lambda: rows.count() == 2)
    assert rows.all_inner_texts()[0].startswith("格式转换")
    listed = alice_api.get("/tasks", target_id=img["id"])["items"]
    assert [t["id"] for t in listed] == [by_domadmin["task_id"], by_alice["task_id"]]
    # the tab follows the tasks until they end
    wait_until(lambda: table.locator(".ant-progress-status-success").count() == 2, TASK_WAIT)
    shot(page, "host-image-tasks-tab")


def test_long_os_name_is_cut_with_a_tooltip(page: Any, seed: Seeder) -> None:
    """At 1280 px a long distribution (the second line of 操作系统, with the architecture) ends
    with an ellipsis inside its column (it used to run over 大小) and shows whole in a tooltip."""
    dist = "Red Hat Enterprise Linux Server for SAP Applications"
    img = seed.host_image("longos", os_distribution=dist, os_version="9.4")
    login(page, "alice")
    search(page, img["name"])
    r = row(page, img["name"])
    os_cell = r.locator("td[data-col=os]")
    assert os_cell.locator("[data-testid=os-text]").inner_text() == "Linux"
    text = os_cell.locator("[data-testid=hi-os-detail] .cut-text")
    cell_box, text_box = os_cell.bounding_box(), text.bounding_box()
    assert cell_box and text_box
    assert text_box["x"] + text_box["width"] <= cell_box["x"] + cell_box["width"] + 0.5
    size_cell = r.locator("td[data-col=size]")
    size_box = size_cell.bounding_box()
    assert size_box and size_box["x"] >= cell_box["x"] + cell_box["width"] - 0.5
    assert size_cell.inner_text() == "1 MiB"
    assert text.evaluate("e => e.scrollWidth > e.clientWidth")  # cut, with an ellipsis
    text.hover()
    tip = page.locator(f".ant-tooltip:visible >> text={dist} 9.4 · x86_64")
    tip.wait_for()
    shot(page, "host-image-list-long-os")
    # the tooltip goes with the pointer
    page.mouse.move(0, 0)
    tip.wait_for(state="hidden")
