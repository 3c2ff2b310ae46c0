"""The CLI as a real process (exit codes, --password-stdin, the token file, completion) and the
connection options in-process (profiles, environment overrides, --debug)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import ADMIN_PASSWORD, Cli, Tenant, disk, unique


def run(
    config_home: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The real ``hostimage`` entry point in a subprocess with its own config directory."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HOSTIMAGE_")}
    base.update(XDG_CONFIG_HOME=str(config_home), COLUMNS="120", NO_COLOR="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "hostimage.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
    )


def test_processes_exit_codes_and_token_file(server: str, tmp_path: Path, tenant: Tenant) -> None:
    home = tmp_path / "cfg"
    r = run(home, "login", "--url", server, "-u", "admin", "--password-stdin",
            stdin=f"{ADMIN_PASSWORD}\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    path = home / "hostimage" / "profiles.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert json.loads(text)["profiles"]["default"]["token"]
    assert ADMIN_PASSWORD not in text

    # Usage error: 2.
    assert run(home, "host-image", "share", "x", "--none", "--everyone").returncode == 2
    # API error: 1, one line with status and code.
    r = run(home, "host-image", "show", "f" * 32)
    assert r.returncode == 1
    assert r.stderr == f"error: Host image {'f' * 32} not found. (404 not_found)\n"
    # Some items of a batch failed: 3.
    img = tenant.member("image", "upload", str(disk(tmp_path / "x.raw", 1))).stdout.strip()
    hid = tenant.member.json("host-image", "create", unique("exit"), "-i", img)["id"]
    r = run(home, "host-image", "protect", hid, "0" * 32, "-o", "json")
    assert r.returncode == 3, r.stderr
    assert [x["ok"] for x in json.loads(r.stdout)["results"]] == [True, False]


def test_shell_completion_script(tmp_path: Path) -> None:
    r = run(tmp_path, "--show-completion", "bash")
    assert r.returncode == 0, r.stderr
    assert "complete" in r.stdout


def test_usage_errors_exit_2(cli: Cli) -> None:
    cli("host-image", "frobnicate", expect=2)
    cli("host-image", "list", "--limit", "0", expect=2)
    cli("host-image", "update", "a", "b", "--name", "x", expect=2)
    cli("host-image", "update", "a", expect=2)
    assert "needs --project" in cli("role", "assign", "bob", "member", expect=2).stderr


def test_not_logged_in(cli: Cli) -> None:
    r = cli("host-image", "list", expect=1)
    assert r.stderr.startswith("error: not logged in")


def test_profiles_and_debug(cli: Cli, admin: Cli) -> None:
    env = {"HOSTIMAGE_PASSWORD": ADMIN_PASSWORD}
    cli("login", "--url", cli.url, "-u", "admin", env=env)
    cli("login", "--url", cli.url, "-u", "admin", "--profile", "ops", env=env)
    listing = cli("profile", "list").stdout
    assert "default" in listing and "ops" in listing
    assert cli.json("whoami", env={"HOSTIMAGE_PROFILE": "default"})["profile"] == "default"
    assert cli.json("whoami")["profile"] == "ops"  # the last login is current
    cli("profile", "use", "default")
    assert cli.json("whoami")["profile"] == "default"
    assert "no profile named" in cli("whoami", "--profile", "nope", expect=1).stderr
    cli("profile", "delete", "ops", "--yes")
    assert "ops" not in cli("profile", "list").stdout

    stored = json.loads((cli.config_home / "hostimage" / "profiles.json").read_text())
    token = stored["profiles"]["default"]["token"]
    r = cli("host-image", "list", "--view", "system", "--debug", "-o", "json")
    assert f"DEBUG > GET {cli.url}/api/v1/host-images?" in r.stderr
    assert "request-id=" in r.stderr
    assert "DEBUG < 200 OK" in r.stderr
    assert token not in r.stderr + r.stdout
    assert "items" in json.loads(r.stdout)


def test_environment_overrides(cli: Cli, admin: Cli) -> None:
    stored = json.loads((admin.config_home / "hostimage" / "profiles.json").read_text())
    env: dict[str, str | None] = {
        "HOSTIMAGE_URL": cli.url + "/api/v1/",
        "HOSTIMAGE_TOKEN": stored["profiles"]["default"]["token"],
    }
    assert cli.json("whoami", env=env)["user"]["name"] == "admin"
    assert not (cli.config_home / "hostimage").exists()
    env["HOSTIMAGE_TOKEN"] = "not-a-token"
    r = cli("whoami", env=env, expect=1)
    assert "(401 bad_token)" in r.stderr
    assert "hostimage login" in r.stderr
