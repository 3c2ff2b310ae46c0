"""The console under the service's limits and faults (SPEC §9.1), in zh-CN and English: the size
limits on the settings page, a failed upload that ends ``killed`` and is uploaded again, a VM
with a static address, a deletion retried while the storage fails, and the login page after too
many wrong passwords. Screenshots at 1440 px go to test-artifacts/e2e."""

from __future__ import annotations

import random
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    CHROMIUM,
    IN_CI,
    Api,
    MiB,
    Seeder,
    api_login,
    copy_to_docs,
    goto,
    login,
    modal,
    modal_ok,
    option,
    shot,
    wait_until,
)

WIDE = {"width": 1440, "height": 900}
SLOW = 480_000  # ms: building a VM launches libguestfs (on TCG: minutes under load)


def _set_lang(page: Any, lang: str) -> None:
    page.evaluate(f"localStorage.setItem('hostimage.lang', '{lang}')")
    page.reload()


def _number_input(page: Any, testid: str) -> Any:
    return page.locator(f"input[data-testid={testid}], [data-testid={testid}] input").first


def _qcow2(path: Path) -> Path:
    if not shutil.which("qemu-img"):
        message = "qemu-img is needed to make a qcow2 file to upload"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


def _raw(path: Path, mib: int = 1) -> Path:
    data = bytearray(mib * MiB)
    data[510:512] = b"\x55\xaa"
    path.write_bytes(bytes(data))
    return path


def _image_row(page: Any, name: str) -> Any:
    return page.locator(f"[data-testid=images-table] tr:has([data-name='{name}'])").first


def _search_images(page: Any, text: str) -> None:
    box = page.locator("input[data-testid=image-search], [data-testid=image-search] input").first
    box.fill(text)
    box.press("Enter")
    page.wait_for_selector(f"[data-testid=images-table] [data-name^='{text}']")


def _images_named(api: Api, name: str) -> list[dict[str, Any]]:
    return [i for i in api.get("/images", name=name, limit=100)["items"] if i["name"] == name]


# ---- size limits --------------------------------------------------------------------------------


def test_size_limits_on_the_settings_page(
    page: Any, admin_api: Api, alice_api: Api, tmp_path: Path
) -> None:
    """A sysadmin sees and changes both limits (a number above 0, fractions allowed); the
    server's 422 is shown beside the field; an upload over the new limit is refused in the
    upload dialog with the limit in the message."""
    before = admin_api.get("/settings")
    big = _raw(tmp_path / "too-big.raw", 8)
    try:
        page.set_viewport_size(WIDE)
        login(page, "admin", view="system")
        page.click("[data-testid=nav-settings]")
        virtual = _number_input(page, "setting-max_virtual_size_gb")
        upload = _number_input(page, "setting-max_upload_size_gb")
        save = page.locator("[data-testid=settings-save-limits]")
        assert float(virtual.input_value()) == before["max_virtual_size_gb"]
        assert float(upload.input_value()) == before["max_upload_size_gb"]
        assert save.is_disabled()  # nothing changed yet
        # not above 0: said at once, nothing can be sent
        upload.fill("0")
        page.locator(".ant-form-item-explain-error >> text=请输入大于 0 的数字").wait_for()
        assert save.is_disabled()
        # over what the server takes (2^30 GiB): its 422 beside the field and above the button
        upload.fill(str(before["max_upload_size_gb"]))
        virtual.fill("2000000000")
        save.click()
        err = page.locator("[data-testid=settings-limits-error]")
        err.wait_for()
        assert "请求参数不正确" in err.inner_text()
        assert "max_virtual_size_gb" in err.inner_text()
        field_error = page.locator(".ant-form-item-has-error .ant-form-item-explain-error")
        assert "1073741824" in field_error.first.inner_text()
        shot(page, "admin-settings-422-1440-zh-CN")
        assert admin_api.get("/settings")["max_virtual_size_gb"] == before["max_virtual_size_gb"]
        # a fraction of a GiB: 0.001 GiB is about 1 MiB
        virtual.fill(str(before["max_virtual_size_gb"]))
        upload.fill("0.001")
        page.locator("[data-testid=setting-max_upload_size_gb-bytes] >> text=1.02 MiB").wait_for()
        save.click()
        page.locator(".ant-message >> text=已保存").wait_for()
        wait_until(lambda: admin_api.get("/settings")["max_upload_size_gb"] == 0.001, timeout=10)
        assert admin_api.get("/settings")["max_virtual_size_gb"] == before["max_virtual_size_gb"]
        _set_lang(page, "en")
        page.locator("[data-testid=settings-save-limits] >> text=Save limits").wait_for()
        shot(page, "admin-settings-limits-1440-en")

        # an upload over the limit: refused, with the limit in the user's language
        login(page, "alice")
        page.set_viewport_size(WIDE)
        page.click("[data-testid=nav-system-images]")
        page.click("[data-testid=image-upload]")
        dlg = modal(page, "dlg-upload")
        dlg.locator("[data-testid=upload-file]").set_input_files(str(big))
        name = f"too-big-{uuid.uuid4().hex[:6]}"
        dlg.locator("[data-testid=upload-name]").fill(name)
        modal_ok(page, "dlg-upload")
        err = dlg.locator("[data-testid=dialog-error]")
        err.wait_for(timeout=60_000)
        assert "文件超过上传大小上限（1.02 MiB）" in err.inner_text()
        shot(page, "dialog-upload-too-large-1440-zh-CN")
        [img] = _images_named(alice_api, name)
        assert img["status"] == "killed" and "max_upload_size_gb" in img["status_reason"]
    finally:
        admin_api.patch(
            "/settings",
            {k: before[k] for k in ("max_virtual_size_gb", "max_upload_size_gb")},
        )


# ---- a failed upload ends killed; upload again ---------------------------------------------------


def test_upload_again_into_a_killed_image(page: Any, alice_api: Api, tmp_path: Path) -> None:
    """Raw bytes declared qcow2 are refused and the image ends killed (上传失败, with the reason);
    the dialog's OK then uploads the right file into the same image, and a killed image in the
    list has 重新上传, which streams a file into it with the progress bar."""
    raw = _raw(tmp_path / "disk.raw")
    good = _qcow2(tmp_path / "disk.qcow2")
    page.set_viewport_size(WIDE)
    login(page, "alice")
    page.click("[data-testid=nav-system-images]")

    # in the upload dialog: refused, then the right file into the same image (no second image)
    name = f"retry-{uuid.uuid4().hex[:6]}"
    page.click("[data-testid=image-upload]")
    dlg = modal(page, "dlg-upload")
    dlg.locator("[data-testid=upload-file]").set_input_files(str(raw))
    dlg.locator("[data-testid=upload-name]").fill(name)
    page.locator("[data-testid=upload-format]").click()
    option(page, "qcow2").click()
    modal_ok(page, "dlg-upload")
    dlg.locator("[data-testid=dialog-error] >> text=镜像内容与声明的格式不符").wait_for()
    [killed] = _images_named(alice_api, name)
    assert killed["status"] == "killed" and killed["status_reason"]
    dlg.locator("[data-testid=upload-file]").set_input_files(str(good))
    modal_ok(page, "dlg-upload")
    page.locator(".dlg-upload .ant-progress-status-success").wait_for(timeout=60_000)
    [active] = _images_named(alice_api, name)
    assert active["id"] == killed["id"] and active["status"] == "active"
    assert active["disk_format"] == "qcow2" and active["checksum"].startswith("sha256:")
    modal_ok(page, "dlg-upload")
    page.locator(".dlg-upload .ant-modal").wait_for(state="hidden")

    # from the list, in both languages: a killed image made through the API
    for lang, failed, title in (
        ("zh-CN", "上传失败", "重新上传镜像"),
        ("en", "Upload failed", "Upload again"),
    ):
        bad = alice_api.post("/images", {"name": f"{name}-{lang}", "disk_format": "qcow2"})
        refused = httpx.put(
            f"{alice_api.base}/api/v1/images/{bad['id']}/data",
            content=raw.read_bytes(),
            headers={"Authorization": f"Bearer {alice_api.token}"},
            timeout=60,
        )
        assert refused.status_code == 400, refused.text
        reason = alice_api.get(f"/images/{bad['id']}")["status_reason"]
        _set_lang(page, lang)
        _search_images(page, name)
        row = _image_row(page, bad["name"])
        assert failed in row.locator(".status-tag").inner_text()
        assert row.locator("[data-testid=status-reason]").get_attribute("title") == reason
        # only a killed (or empty) standalone image takes an upload
        assert _image_row(page, name).locator("[data-testid=image-reupload]").count() == 0
        shot(page, f"system-images-killed-1440-{lang}")
        if lang == "zh-CN":
            copy_to_docs(shot(page, "system-images-killed"))
        row.locator("[data-testid=image-reupload]").click()
        dlg = modal(page, "dlg-upload")
        assert dlg.locator(".ant-modal-title").inner_text() == title
        assert reason in dlg.locator("[data-testid=reupload-note]").inner_text()
        assert dlg.locator("[data-testid=upload-name]").is_disabled()
        assert dlg.locator("[data-testid=upload-name]").input_value() == bad["name"]
        dlg.locator("[data-testid=upload-file]").set_input_files(str(good))
        shot(page, f"dialog-upload-again-1440-{lang}")
        if lang == "zh-CN":
            copy_to_docs(shot(page, "dialog-upload-again"))
        modal_ok(page, "dlg-upload")
        page.locator(".dlg-upload .ant-progress-status-success").wait_for(timeout=60_000)
        modal_ok(page, "dlg-upload")
        page.locator(".dlg-upload .ant-modal").wait_for(state="hidden")
        got = alice_api.get(f"/images/{bad['id']}")
        assert got["status"] == "active" and got["status_reason"] is None
        assert got["virtual_size"] == 64 * MiB
        done = _image_row(page, bad["name"])
        wait_until(lambda row=done: row.locator("[data-status=active]").count())
        assert done.locator("[data-testid=image-reupload]").count() == 0


# ---- a VM with a static address ----------------------------------------------------------------


def test_create_vm_with_a_static_address(page: Any, seed: Seeder, alice_api: Api) -> None:
    """DHCP by default; a static address needs a system disk from an image; the CIDR shape is
    checked in the form, the server's 422 invalid_network is shown with its detail, and the
    request carries ``network``."""
    template = seed.host_image("net", disks=1)
    vm = f"static-{uuid.uuid4().hex[:6]}"
    posts: list[Any] = []
    page.on(
        "request",
        lambda r: posts.append(r) if r.method == "POST" and r.url.endswith("/servers") else None,
    )
    page.set_viewport_size(WIDE)
    login(page, "alice")
    page.click("[data-testid=nav-servers]")
    page.click("[data-testid=server-create]")
    dlg = modal(page, "dlg-create-server")
    dlg.locator("[data-testid=create-name]").fill(vm)
    # blank disks: nothing to write a static address into
    dlg.locator("[data-testid=create-source-blank]").click()
    assert dlg.locator("[data-testid=create-network-dhcp] input").is_checked()
    assert dlg.locator("[data-testid=create-network-static] input").is_disabled()
    dlg.locator("[data-testid=create-source-host-image]").click()
    dlg.locator("[data-testid=create-host-image]").click()
    dlg.locator("[data-testid=create-host-image] input").fill(template["name"])
    option(page, template["name"]).click()
    dlg.locator("[data-testid=create-network-static]").click()
    # not CIDR: said in the form, nothing sent
    dlg.locator("[data-testid=create-net-address]").fill("192.0.2.10")
    modal_ok(page, "dlg-create-server")
    dlg.locator(".ant-form-item-explain-error >> text=IP 地址须为 CIDR 格式").wait_for()
    assert posts == []
    # a gateway outside the network: the server's 422 with its detail
    dlg.locator("[data-testid=create-net-address]").fill("192.0.2.10/24")
    dlg.locator("[data-testid=create-net-gateway]").fill("198.51.100.1")
    modal_ok(page, "dlg-create-server")
    err = dlg.locator("[data-testid=dialog-error]")
    err.wait_for()
    assert "静态网络配置无效" in err.inner_text()
    assert "192.0.2.0/24" in err.inner_text()
    assert len(posts) == 1 and posts[0].post_data_json["network"]["gateway"] == "198.51.100.1"
    assert not [s for s in alice_api.get("/servers", name=vm)["items"] if s["name"] == vm]
    # a usable address: the request carries it, and the VM is built
    dlg.locator("[data-testid=create-net-gateway]").fill("192.0.2.1")
    dlg.locator("[data-testid=create-net-dns]").fill("192.0.2.53, 192.0.2.54")
    shot(page, "dialog-create-vm-static-1440-zh-CN")
    copy_to_docs(shot(page, "dialog-create-vm-network"))
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/servers")) as req:
        modal_ok(page, "dlg-create-server")
    assert req.value.post_data_json["network"] == {
        "address": "192.0.2.10/24",
        "gateway": "192.0.2.1",
        "dns": ["192.0.2.53", "192.0.2.54"],
    }
    assert req.value.post_data_json["host_image_id"] == template["id"]
    page.locator(".dlg-create-server [data-testid=create-done]").wait_for(timeout=SLOW)
    [server] = [s for s in alice_api.get("/servers", name=vm)["items"] if s["name"] == vm]
    assert server["status"] == "ready"
    modal_ok(page, "dlg-create-server")
    page.locator(".dlg-create-server .ant-modal").wait_for(state="hidden")
    # the same section in English
    _set_lang(page, "en")
    page.click("[data-testid=server-create]")
    dlg = modal(page, "dlg-create-server")
    dlg.locator("[data-testid=create-name]").fill(f"{vm}-en")
    dlg.locator("[data-testid=create-source-host-image]").click()
    dlg.locator("[data-testid=create-host-image]").click()
    dlg.locator("[data-testid=create-host-image] input").fill(template["name"])
    option(page, template["name"]).click()
    dlg.locator("[data-testid=create-network-static]").click()
    dlg.locator("[data-testid=create-net-address]").fill("2001:db8::10")
    modal_ok(page, "dlg-create-server")
    dlg.locator(
        ".ant-form-item-explain-error >> text=The IP address must be in CIDR form"
    ).wait_for()
    shot(page, "dialog-create-vm-static-1440-en")


# ---- a deletion retried while the storage fails -----------------------------------------------


def test_deletion_retried_while_the_storage_fails(
    page: Any, alice_api: Api, server_data_dir: Path, tmp_path: Path
) -> None:
    """A host image whose stored data cannot be removed stays 删除中 with the reason, and its
    任务 tab says the delete is waiting for another attempt and why; once the storage works
    again the deletion finishes by itself and the page goes back to the list."""
    disk = alice_api.post(
        "/images", {"name": f"fault-{uuid.uuid4().hex[:6]}", "disk_format": "raw"}
    )
    alice_api.put_data(f"/images/{disk['id']}/data", _raw(tmp_path / "fault.raw").read_bytes())
    hi = alice_api.post(
        "/host-images",
        {"name": f"{disk['name']}-hi", "image_ids": [disk["id"]], "protected": False},
    )
    # the standalone image goes; its stored object stays, the host image's sub-image uses it
    alice_api.del_(f"/images/{disk['id']}")
    wait_until(lambda: alice_api.status(f"/images/{disk['id']}") == 404, timeout=60)
    [obj] = list((server_data_dir / "objects" / "images" / disk["id"]).iterdir())
    # a directory where the object was: the file system refuses to unlink it (EISDIR), as a
    # failing storage would, until it is put back
    saved = tmp_path / "object"
    shutil.move(obj, saved)
    obj.mkdir()
    (obj / "in-the-way").write_bytes(b"x")
    try:
        alice_api.del_(f"/host-images/{hi['id']}")
        wait_until(lambda: alice_api.host_image(hi["id"])["status_reason"], timeout=60)
        page.set_viewport_size(WIDE)
        login(page, "alice")
        for lang, waiting, attempt in (
            ("zh-CN", "等待重试", "次尝试失败，等待重试："),
            ("en", "Retrying", "failed, will retry: "),
        ):
            page.evaluate(f"localStorage.setItem('hostimage.lang', '{lang}')")
            goto(page, f"/host-images/{hi['id']}?tab=detail")
            page.reload()
            note = page.locator("[data-testid=detail-status-reason]")
            note.wait_for()
            assert "Is a directory" in note.inner_text()
            assert page.locator(".detail-head [data-status=deleting]").count() == 1
            shot(page, f"host-image-deleting-1440-{lang}")
            page.locator("[data-testid=detail-tabs] .ant-tabs-tab").nth(3).click()
            tasks = page.locator("[data-testid=tasks-table]")
            tasks.locator(f".status-tag >> text={waiting}").wait_for()
            task_note = tasks.locator("[data-testid=task-note]").first
            assert attempt in task_note.inner_text()
            assert "Is a directory" in str(task_note.get_attribute("title"))
            page.wait_for_timeout(500)  # the tab's ink bar moves under 任务
            shot(page, f"host-image-tasks-retrying-1440-{lang}")
            if lang == "zh-CN":
                copy_to_docs(shot(page, "host-image-tasks-retrying"))
    finally:
        shutil.rmtree(obj)
        shutil.move(saved, obj)
    # the next attempt succeeds: the page, still polling, goes back to the list
    page.wait_for_selector("[data-testid=host-image-table]", timeout=400_000)
    assert alice_api.status(f"/host-images/{hi['id']}") == 404
    assert not obj.exists()


# ---- login throttling ---------------------------------------------------------------------------


def test_login_page_after_five_wrong_passwords(browser: Any, server: str, admin_api: Api) -> None:
    """The sixth login of a user after five wrong passwords — the right password too — is
    refused (429); the page says how many seconds to wait (Retry-After) and counts them down,
    and the button waits for that user only."""
    assert Path(CHROMIUM).exists()
    default = next(d for d in admin_api.get("/domains")["items"] if d["name"] == "Default")
    user = f"throwaway-{uuid.uuid4().hex[:6]}"
    password = "throwaway-pass-1"
    admin_api.post("/users", {"name": user, "domain_id": default["id"], "password": password})
    # Every test logs in from 127.0.0.1: this browser comes from an address of its own
    # (X-Forwarded-For, trusted from the loopback proxy address), so the address lock it earns
    # locks out no other test.
    address = f"198.51.100.{random.randint(1, 254)}"
    context = browser.new_context(
        viewport=WIDE, locale="zh-CN", extra_http_headers={"X-Forwarded-For": address}
    )
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{server}/#/login")
        page.evaluate("localStorage.clear(); localStorage.setItem('hostimage.lang', 'zh-CN')")
        page.reload()
        page.fill("[data-testid=login-username]", user)
        error = page.locator("[data-testid=login-error]")
        submit = page.locator("[data-testid=login-submit]")
        for i in range(5):
            page.fill("[data-testid=login-password]", f"wrong-{i}")
            with page.expect_response(lambda r: r.url.endswith("/auth/login")) as answer:
                submit.click()
            assert answer.value.status == 401
            assert error.inner_text() == "用户名或密码错误"
        page.fill("[data-testid=login-password]", password)
        with page.expect_response(lambda r: r.url.endswith("/auth/login")) as answer:
            submit.click()
        assert answer.value.status == 429
        retry_after = int(answer.value.headers["retry-after"])
        assert 1 <= retry_after <= 60
        text = error.inner_text()
        assert text.startswith("登录失败次数过多，请 ") and text.endswith(" 秒后再试"), text
        seconds = int(text.removeprefix("登录失败次数过多，请 ").removesuffix(" 秒后再试"))
        assert 1 <= seconds <= retry_after
        assert submit.is_disabled() and "秒后可再次登录" in submit.inner_text()
        # the countdown goes on
        wait_until(lambda: f"请 {seconds} 秒" not in error.inner_text(), timeout=5)
        shot(page, "login-throttled-1440-zh-CN")
        copy_to_docs(shot(page, "login-throttled"))
        # another user may still try (the lock may be the user's only)
        page.fill("[data-testid=login-username]", "alice")
        assert submit.is_enabled() and submit.inner_text().replace(" ", "") == "登录"
        page.fill("[data-testid=login-username]", user)
        assert submit.is_disabled()
        # the language switch says it in English
        page.click("[data-testid=login-lang]")
        page.locator(".ant-select-dropdown:visible >> text=English").click()
        wait_until(lambda: "Too many failed sign-ins; try again in" in error.inner_text())
        assert "You may sign in again in" in submit.inner_text()
        wait_until(lambda: page.locator(".ant-select-dropdown:visible").count() == 0, timeout=5)
        shot(page, "login-throttled-1440-en")
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    # the lock was this browser's address and the throwaway user's: others still log in
    assert api_login(server, "alice").token
    refused = httpx.post(
        f"{server}/api/v1/auth/login",
        json={"username": user, "password": password},
        timeout=30,
    )
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_attempts"
