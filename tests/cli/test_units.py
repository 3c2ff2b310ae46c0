"""Pieces of the CLI that need no server: profiles file, URL handling, parsing helpers,
and the rule that the CLI talks to the server only through the REST API."""

from __future__ import annotations

import ast
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hostimage.cli import config
from hostimage.cli.images import guess_format
from hostimage.cli.logs import moment, summarise_notes
from hostimage.cli.output import cell, short_sum, size, when
from hostimage.cli.servers import _disk
from hostimage.cli.vocab import DiskFormat

CLI_DIR = Path(__file__).parents[2] / "src" / "hostimage" / "cli"


@pytest.fixture()
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for var in ("HOSTIMAGE_URL", "HOSTIMAGE_TOKEN", "HOSTIMAGE_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_profiles_file_is_private_and_round_trips(config_home: Path) -> None:
    cfg = config.Config(current="prod")
    cfg.profiles["prod"] = config.Profile(url="http://a:1", username="u", token="t")
    old_umask = os.umask(0)
    try:
        path = config.save(cfg)
    finally:
        os.umask(old_umask)
    assert path == config_home / "hostimage" / "profiles.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = config.load()
    assert loaded.current == "prod"
    assert loaded.profiles["prod"].token == "t"
    assert [p.name for p in path.parent.iterdir()] == ["profiles.json"]


def test_environment_overrides(config_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.Config(current="a")
    cfg.profiles["a"] = config.Profile(url="http://a:1", token="ta")
    cfg.profiles["b"] = config.Profile(url="http://b:2", token="tb")
    config.save(cfg)
    assert (config.connection(None).url, config.connection(None).token) == ("http://a:1", "ta")
    monkeypatch.setenv("HOSTIMAGE_PROFILE", "b")
    assert config.connection(None).token == "tb"
    assert config.connection("a").token == "ta"
    monkeypatch.setenv("HOSTIMAGE_URL", "http://c:3/api/v1")
    monkeypatch.setenv("HOSTIMAGE_TOKEN", "tc")
    conn = config.connection(None)
    assert (conn.url, conn.token, conn.token_from_env) == ("http://c:3", "tc", True)
    with pytest.raises(config.ConfigError):
        monkeypatch.delenv("HOSTIMAGE_URL")
        config.connection("missing")


def test_unreadable_profiles_file(config_home: Path) -> None:
    (config_home / "hostimage").mkdir()
    (config_home / "hostimage" / "profiles.json").write_text("{not json")
    with pytest.raises(config.ConfigError):
        config.load()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("cloud:8080", "http://cloud:8080"),
        ("https://cloud.example/", "https://cloud.example"),
        ("http://127.0.0.1:8080/api/v1", "http://127.0.0.1:8080"),
    ],
)
def test_normalise_url(given: str, expected: str) -> None:
    assert config.normalise_url(given) == expected


def test_helpers() -> None:
    assert guess_format(Path("a.QCOW2")) is DiskFormat.QCOW2
    assert guess_format(Path("disk.img")) is DiskFormat.RAW
    assert guess_format(Path("x.vhdx")) is DiskFormat.VHDX
    assert _disk("20G") == {"size_mb": 20480}
    assert _disk("512M") == {"size_mb": 512}
    assert _disk("64") == {"size_mb": 64}
    assert size(0) == "0 B"
    assert size(196624) == "192.0 KiB"
    assert size(4 * 1024**3) == "4.0 GiB"
    assert when("2026-11-27T18:31:06.392909Z") == "2026-11-27 18:31:06"
    assert cell(None) == "-" and cell(True) == "yes" and cell(["a", "b"]) == "a, b"
    assert short_sum("sha256:" + "a" * 64) == "sha256:" + "a" * 16 + "…"
    assert moment("2026-01-01") == "2026-01-01"
    since = datetime.strptime(str(moment("2h")), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 7100 < (datetime.now(UTC) - since).total_seconds() < 7300


def test_notes_summaries() -> None:
    assert summarise_notes({"changes": {"name": ["a", "b"], "protected": [True, False]}}) == (
        "name: a → b; protected: yes → no"
    )
    share = {"old": {"scope": "none"}, "new": {"scope": "project", "project_ids": ["p", "q"]}}
    assert summarise_notes(share) == "none → project(2)"
    assert summarise_notes({"error": {"code": "protected", "detail": "No."}}) == "protected: No."
    assert summarise_notes({}) == ""
    assert summarise_notes({"x": "y" * 100}).endswith("…")


def test_cli_uses_only_the_rest_api() -> None:
    """The CLI package imports nothing of the server (no services, db, api, tasks…); only the
    pure vocabularies of ``hostimage.domain`` are shared."""
    allowed_internal = ("hostimage.cli", "hostimage.domain")
    offenders = []
    for path in sorted(CLI_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("hostimage") and not name.startswith(allowed_internal):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
