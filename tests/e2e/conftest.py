"""End-to-end fixtures: a real ``hostimage serve --demo`` with the built console, Debian's
Chromium driven by Playwright, an API client to seed data, and screenshot helpers.

The console must be built (``scripts/build-web``; ``scripts/test`` builds it first). Outside CI
a missing or stale build is made here and a missing Chromium skips these tests; with ``CI``
set both fail the run instead. Screenshots and server logs go to ``test-artifacts/e2e``
(git-ignored). Under ``pytest -n`` each xdist worker that runs e2e tests has its own server
and browser (session fixtures); the tests make their own uniquely named data, so they do not
depend on which worker runs them or in which order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST = ROOT / "src" / "hostimage" / "web" / "dist"
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("HOSTIMAGE_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
ADMIN_PASSWORD = "admin-e2e-1"
DEMO_PASSWORD = "demo-pass-1"
DOMAIN_OF = {"eastadmin": "east", "bob": "east"}
VIEWPORT = {"width": 1280, "height": 800}
MiB = 1024 * 1024
# Seconds to wait for a task to end: tasks queue behind the demo's VM builds, and a libguestfs
# appliance may run on TCG next to the rest of the test suite.
TASK_WAIT = 240
# The data directory of each test server, by base URL (the storage-fault tests break and mend
# stored objects there).
DATA_DIRS: dict[str, Path] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _newest_source() -> float:
    """The newest modification time of the console's sources."""
    files = [WEB / "index.html", WEB / "package-lock.json", WEB / "vite.config.ts"]
    for folder in ("src", "public"):
        files += [p for p in (WEB / folder).rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in files if p.exists())


def _ensure_console_built() -> None:
    index = DIST / "index.html"
    if index.is_file() and index.stat().st_mtime >= _newest_source():
        return
    problem = "is not built" if not index.is_file() else "is older than its sources in web/"
    if IN_CI:
        pytest.fail(f"The console {problem}: scripts/test runs ./scripts/build-web first.")
    subprocess.run([str(ROOT / "scripts" / "build-web")], check=True, cwd=ROOT)
    assert index.is_file(), "scripts/build-web did not produce the console"


def _processes_using(folder: Path) -> list[int]:
    """Processes with ``folder`` or a path inside it in their command line (a test server's
    own data dir: its workers' guestfish and qemu name disks there)."""
    exact, inside = b"\0" + bytes(folder) + b"\0", bytes(folder) + b"/"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = b"\0" + (entry / "cmdline").read_bytes()
            if exact in cmdline or inside in cmdline:
                pids.append(int(entry.name))
    return pids


def _stop_server(proc: subprocess.Popen[bytes], data_dir: Path) -> None:
    """SIGTERM (the server stops its workers, which stop their libguestfs appliances), then
    SIGKILL whatever is left: the server's process group and anything working in its data dir.
    """
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=150)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the server was started in its own session
    proc.wait(timeout=30)
    for pid in _processes_using(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``hostimage serve --demo`` on a free port; yields the base URL."""
    _ensure_console_built()
    data_dir = tmp_path_factory.mktemp("e2e-data")
    port = _free_port()
    env = {
        **os.environ,
        "HOSTIMAGE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "HOSTIMAGE_ARGON2_TIME_COST": "1",
        "HOSTIMAGE_ARGON2_MEMORY_KIB": "1024",
        # The test VMs have no OS to answer a graceful shutdown: forced off after 15 s.
        "HOSTIMAGE_HOST_SHUTDOWN_SECONDS": "15",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / f"server-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.log"
    log = log_path.open("wb")
    # Two workers: the demo's VM builds (a libguestfs appliance each) must not hold up the
    # tasks the tests start.
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "hostimage.main", "serve", "--demo"),
            *("--port", str(port), "--data-dir", str(data_dir), "--workers", "2"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text(errors="replace")[-4000:])
            time.sleep(0.3)
        DATA_DIRS[base] = data_dir
        yield base
    finally:
        _stop_server(proc, data_dir)
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"The console tests need Debian's chromium ({CHROMIUM})"
        if IN_CI:
            pytest.fail(message + "; ./scripts/setup installs it")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


# ---- API client for seeding -------------------------------------------------------------------


@dataclass
class Api:
    base: str
    token: str
    user: str
    whoami: dict[str, Any] = field(default_factory=dict)

    def _h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.base}/api/v1{path}", params=params, headers=self._h(), timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 202)) -> Any:
        r = httpx.post(f"{self.base}/api/v1{path}", json=body or {}, headers=self._h(), timeout=30)
        assert r.status_code in ok, r.text
        return r.json() if r.content else None

    def patch(self, path: str, body: Any) -> Any:
        r = httpx.patch(f"{self.base}/api/v1{path}", json=body, headers=self._h(), timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def del_(self, path: str) -> Any:
        r = httpx.delete(f"{self.base}/api/v1{path}", headers=self._h(), timeout=30)
        assert r.status_code in (200, 202, 204), r.text
        return r.json() if r.content else None

    def status(self, path: str) -> int:
        """The status code of a GET (404 once an object is gone)."""
        r = httpx.get(f"{self.base}/api/v1{path}", headers=self._h(), timeout=30)
        return r.status_code

    def put_data(self, path: str, data: bytes) -> Any:
        r = httpx.put(
            f"{self.base}/api/v1{path}",
            content=data,
            headers={**self._h(), "Content-Type": "application/octet-stream"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return r.json()

    def id_of(self, kind: str, name: str, **params: Any) -> str:
        items = self.get(f"/{kind}", **params)["items"]
        return next(i["id"] for i in items if i["name"] == name)

    def host_image(self, hid: str) -> dict[str, Any]:
        return dict(self.get(f"/host-images/{hid}"))


def api_login(base: str, user: str) -> Api:
    password = ADMIN_PASSWORD if user == "admin" else DEMO_PASSWORD
    body = {"username": user, "password": password, "domain": DOMAIN_OF.get(user, "Default")}
    r = httpx.post(f"{base}/api/v1/auth/login", json=body, timeout=30)
    r.raise_for_status()
    out = r.json()
    return Api(base, out["token"], user, out)


@pytest.fixture(scope="session")
def server_data_dir(server: str) -> Path:
    """The data directory of the test server (its database and stored objects)."""
    return DATA_DIRS[server]


@pytest.fixture(scope="session")
def admin_api(server: str) -> Api:
    return api_login(server, "admin")


@pytest.fixture(scope="session")
def alice_api(server: str) -> Api:
    return api_login(server, "alice")


@pytest.fixture(scope="session")
def domadmin_api(server: str) -> Api:
    return api_login(server, "domadmin")


def _raw_disk(mib: int, seed: str) -> bytes:
    block = bytearray(mib * MiB)
    block[510:512] = b"\x55\xaa"
    block[MiB // 2 : MiB // 2 + len(seed)] = seed.encode()
    return bytes(block)


@dataclass
class Seeder:
    """Makes host images through the API (upload raw disks, compose) with unique names."""

    api: Api
    _disks: dict[int, list[str]] = field(default_factory=dict)

    def disks(self, count: int) -> list[str]:
        if count not in self._disks:
            ids = []
            for i in range(count):
                img = self.api.post(
                    "/images",
                    {"name": f"e2e-disk-{uuid.uuid4().hex[:6]}-{i}", "disk_format": "raw"},
                )
                self.api.put_data(f"/images/{img['id']}/data", _raw_disk(1, f"{img['id']}"))
                ids.append(img["id"])
            self._disks[count] = ids
        return self._disks[count]

    def host_image(
        self, prefix: str, *, disks: int = 1, protected: bool = False, **attrs: Any
    ) -> dict[str, Any]:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        body = {
            "name": name,
            "image_ids": self.disks(disks),
            "protected": protected,
            "os_type": "Linux",
            "os_distribution": "Debian",
            "os_version": "12",
            "os_arch": "x86_64",
            "description": f"e2e {prefix}",
            **attrs,
        }
        return dict(self.api.post("/host-images", body))


@pytest.fixture(scope="session")
def seed(alice_api: Api) -> Seeder:
    """Host images owned by alice's project ``dev`` (domain Default)."""
    return Seeder(alice_api)


# ---- pages -----------------------------------------------------------------------------------


@pytest.fixture()
def page(browser: Any, server: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, locale="zh-CN")
    context.set_default_timeout(30_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.base_url = server  # type: ignore[attr-defined]
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        shot(pg, f"FAILED-{request.node.name}")
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep


def login(page: Any, user: str, *, view: str | None = None, lang: str = "zh-CN") -> None:
    """Sign in through the login page of a fresh browser profile (nothing remembered), then
    switch to ``view`` (project/domain/system) with the view switcher if the login did not
    land there: a login starts in the user's highest view."""
    base = page.base_url
    page.goto(f"{base}/#/login")
    page.evaluate(f"localStorage.clear(); localStorage.setItem('hostimage.lang', '{lang}');")
    page.goto(f"{base}/#/login")
    page.reload()
    sign_in(page, user)
    if view and not page.locator(f"[data-testid=view-switcher].view-{view}").count():
        switch_view(page, view)


def sign_in(page: Any, user: str) -> None:
    """Fill in and send the login form on screen; wait for the host-image list."""
    page.fill("[data-testid=login-username]", user)
    page.fill("[data-testid=login-password]", ADMIN_PASSWORD if user == "admin" else DEMO_PASSWORD)
    page.fill("[data-testid=login-domain]", DOMAIN_OF.get(user, "Default"))
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=host-image-table]")


def switch_view(page: Any, view: str) -> None:
    """Pick ``view`` in the view switcher and wait until the page shows it."""
    page.click("[data-testid=view-switcher]")
    page.click(f"[data-testid=view-option-{view}]")
    page.wait_for_selector(f"[data-testid=view-switcher].view-{view}")


def goto(page: Any, route: str) -> None:
    page.goto(f"{page.base_url}/#{route}")


def shot(page: Any, name: str) -> Path:
    """Save a 1280×800 screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def copy_to_docs(path: Path) -> None:
    """Keep the main screenshots next to docs/console.md (refreshed by the e2e run)."""
    if os.environ.get("HOSTIMAGE_E2E_DOCS_SHOTS"):
        dest = ROOT / "docs" / "console"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / path.name)


def row(page: Any, name: str) -> Any:
    """The host-image table row of ``name``."""
    return page.locator(f"[data-testid=host-image-table] tr:has([data-name='{name}'])").first


def search(page: Any, text: str) -> None:
    """Search the host-image list by name and wait for the answer to that search (the rows on
    screen before it may already match, with the total of the previous list)."""
    box = page.locator("input[data-testid=hi-search], [data-testid=hi-search] input").first
    box.fill(text)
    wanted = "name=" + urlencode({"": text})[1:]
    with page.expect_response(lambda r: "/api/v1/host-images?" in r.url and wanted in r.url):
        box.press("Enter")
    page.wait_for_selector(f"[data-testid=host-image-table] [data-name^='{text}']")


def row_menu(page: Any, name: str, item: str) -> None:
    """Open 更多 ▾ of a row and click one of its items (edit/share/changeProject/…)."""
    close_menus(page)
    row(page, name).locator("[data-testid=row-more]").click()
    page.locator(f".ant-dropdown:visible [data-testid=menu-{item}]").click()


def close_menus(page: Any) -> None:
    """Close open dropdown menus (click outside) and wait until they are gone."""
    if page.locator(".ant-dropdown:visible").count():
        page.locator(".page-title").first.click()
        wait_until(lambda: page.locator(".ant-dropdown:visible").count() == 0, timeout=5)


def modal(page: Any, wrap: str) -> Any:
    return page.locator(f".{wrap} .ant-modal").first


def modal_ok(page: Any, wrap: str) -> None:
    modal(page, wrap).locator(".ant-modal-footer .ant-btn-primary").click()


def pick(page: Any, select_testid: str, option_text: str) -> None:
    """Choose an option of an Ant Design select by its visible text."""
    select = page.locator(f"[data-testid={select_testid}]").first
    for _ in range(5):  # the options may still be loading: open the dropdown again
        if not page.locator(".ant-select-dropdown:visible").count():
            select.click()
        try:
            option(page, option_text).click(timeout=3000)
            return
        except PlaywrightTimeout:
            select.click()  # close it; the next round opens it with fresh options
    option(page, option_text).click()


def option(page: Any, text: str) -> Any:
    """An option of the open select dropdown, by its exact text."""
    return page.locator(
        f'.ant-select-dropdown:visible .ant-select-item-option-content >> text="{text}"'
    ).first


def close_dropdown(page: Any, wrap: str) -> None:
    """Close an open select dropdown inside a dialog (Escape would close the dialog too)."""
    modal(page, wrap).locator(".ant-modal-title").click()
    page.locator(".ant-select-dropdown:visible").first.wait_for(state="hidden")


def wait_until(fn: Any, timeout: float = 30, step: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)
