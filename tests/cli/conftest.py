"""CLI tests against a real ``hostimage serve`` started once per test session (per xdist
worker): commands run in-process with Typer's CliRunner, a few as real subprocesses.

Every test gets its own config directory (``XDG_CONFIG_HOME``) and, through
:func:`tenant`, its own project and member user, so tests do not see each other's images.
"""

from __future__ import annotations

import json
import os
import re
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

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from hostimage.cli.__main__ import build_app

ADMIN_PASSWORD = "cli-admin-pass-1"
USER_PASSWORD = "cli-user-pass-1"
GOLDEN = Path(__file__).parent / "golden"

# Variables of the developer's shell that would change what the CLI does.
_UNSET = (
    "HOSTIMAGE_URL",
    "HOSTIMAGE_TOKEN",
    "HOSTIMAGE_PROFILE",
    "HOSTIMAGE_PASSWORD",
    "HOSTIMAGE_NEW_PASSWORD",
    "HOSTIMAGE_VM_PASSWORD",
    "HOSTIMAGE_DEBUG",
    "FORCE_COLOR",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server (SQLite, local files, one embedded worker); yields its URL."""
    data = tmp_path_factory.mktemp("cli-server")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTIMAGE_")}
    env.update(
        HOSTIMAGE_ADMIN_PASSWORD=ADMIN_PASSWORD,
        HOSTIMAGE_ARGON2_TIME_COST="1",
        HOSTIMAGE_ARGON2_MEMORY_KIB="1024",
    )
    log = (data / "server.log").open("wb")
    argv = [sys.executable, "-m", "hostimage.main", "serve", "--port", str(port)]
    argv += ["--data-dir", str(data / "data"), "--workers", "1"]
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"hostimage serve exited:\n{(data / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"hostimage serve not ready:\n{(data / 'server.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def app() -> typer.Typer:
    """The client commands on a Typer app of their own."""
    return build_app()


@dataclass
class Cli:
    """Runs ``hostimage …`` in-process with one config directory."""

    app: typer.Typer
    url: str
    config_home: Path
    env: dict[str, str | None] = field(default_factory=dict)

    def environment(self, extra: dict[str, str | None] | None = None) -> dict[str, str | None]:
        """The environment of a command: isolated config, fixed width, no colours."""
        env: dict[str, str | None] = dict.fromkeys(_UNSET)
        env.update(
            XDG_CONFIG_HOME=str(self.config_home),
            COLUMNS="120",
            NO_COLOR="1",
            TERM="dumb",
            HOSTIMAGE_POLL_INTERVAL="0.1",
        )
        env.update(self.env)
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str,
        expect: int | None = 0,
        input: str | None = None,
        env: dict[str, str | None] | None = None,
    ) -> Result:
        """Run a command; check its exit code unless ``expect`` is None."""
        result = CliRunner().invoke(self.app, list(args), input=input, env=self.environment(env))
        if expect is not None and result.exit_code != expect:
            raise AssertionError(
                f"hostimage {' '.join(args)}: exit {result.exit_code}, expected {expect}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
                f"exception: {result.exception!r}"
            )
        return result

    def json(self, *args: str, **kw: Any) -> Any:
        """Run with ``-o json`` and parse the answer."""
        return json.loads(self(*args, "-o", "json", **kw).stdout)

    def login(self, user: str, password: str, domain: str = "Default") -> None:
        """Log in (password from HOSTIMAGE_PASSWORD)."""
        self(
            "login",
            "--url",
            self.url,
            "--user",
            user,
            "--domain",
            domain,
            env={"HOSTIMAGE_PASSWORD": password},
        )


@pytest.fixture()
def cli(app: typer.Typer, server: str, tmp_path: Path) -> Cli:
    """A CLI with an empty config directory (not logged in)."""
    home = tmp_path / "config"
    home.mkdir()
    return Cli(app, server, home)


@pytest.fixture()
def admin(app: typer.Typer, server: str, tmp_path: Path) -> Cli:
    """A CLI logged in as the sysadmin."""
    home = tmp_path / "admin-config"
    home.mkdir()
    c = Cli(app, server, home)
    c.login("admin", ADMIN_PASSWORD)
    return c


@dataclass
class Tenant:
    """A fresh project with a member logged in, and the sysadmin."""

    project: str
    project_id: str
    user: str
    member: Cli
    admin: Cli


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def make_tenant(admin: Cli, app: typer.Typer, home: Path, project: str | None = None) -> Tenant:
    """Create a project and a member of it, and log the member in."""
    project = project or unique("proj")
    user = f"u-{project}"
    pid = admin.json("project", "create", project)["id"]
    admin("user", "create", user, env={"HOSTIMAGE_NEW_PASSWORD": USER_PASSWORD})
    admin("role", "assign", user, "member", "--project", project)
    home.mkdir(parents=True, exist_ok=True)
    member = Cli(app, admin.url, home)
    member.login(user, USER_PASSWORD)
    return Tenant(project, pid, user, member, admin)


@pytest.fixture()
def tenant(admin: Cli, app: typer.Typer, tmp_path: Path) -> Tenant:
    """A fresh project and member (see :class:`Tenant`)."""
    return make_tenant(admin, app, tmp_path / "member-config")


def disk(path: Path, mib: int, seed: int = 0) -> Path:
    """A small raw disk file with deterministic content."""
    block = bytes((seed + i) % 251 for i in range(4096))
    path.write_bytes(block * (mib * 256))
    return path


_ID = re.compile(r"\b[0-9a-f]{32}\b")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_PORT = re.compile(r"http://127\.0\.0\.1:\d+")


def normalise(text: str, names: dict[str, str] | None = None) -> str:
    """Ids (numbered in order of appearance), times and the server port replaced by
    placeholders of the same width, so that columns stay aligned; trailing blanks dropped."""
    for real, placeholder in (names or {}).items():
        text = text.replace(real, placeholder)
    seen: dict[str, str] = {}

    def number(m: re.Match[str]) -> str:
        return seen.setdefault(m.group(0), f"id-{len(seen) + 1:0>29}")

    text = _ID.sub(number, text)
    text = _TIME.sub("YYYY-MM-DD hh:mm:ss", text)
    text = _PORT.sub("http://<server>", text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def golden(name: str, text: str) -> None:
    """Compare with ``golden/<name>.txt`` (``HOSTIMAGE_UPDATE_GOLDEN=1`` rewrites it)."""
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("HOSTIMAGE_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path.name}; run with HOSTIMAGE_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")
