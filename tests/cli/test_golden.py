"""Golden output of the main tables (120 columns, no colours), ids and times normalised.

Regenerate after an intended change with ``HOSTIMAGE_UPDATE_GOLDEN=1 pytest tests/cli``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hostimage.cli.logs import log_table
from tests.cli.conftest import Cli, Tenant, disk, golden, normalise, unique


def _names(tenant: Tenant, *extra: tuple[str, str]) -> dict[str, str]:
    # Placeholders as long as the real names, so that column widths stay as rendered.
    names = {tenant.user: "u-proj-000000", tenant.project: "proj-000000"}
    names.update(extra)
    return names


def test_golden_tables(
    tenant: Tenant,
    admin: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    member = tenant.member
    root = member.json("image", "upload", str(disk(tmp_path / "root.raw", 4, 7)), "--name", "r")
    data = member.json("image", "upload", str(disk(tmp_path / "data.raw", 2, 9)), "--name", "d")
    web, db = unique("gweb"), unique("gdb")
    names = _names(tenant, (web, "gweb-000000"), (db, "gdb-000000"))
    member(
        "host-image", "create", db, "-i", root["id"], "--os-type", "Linux",
        "--description", "database tier",
    )  # fmt: skip
    member(
        "host-image", "create", web, "-i", root["id"], "-i", data["id"], "--os-type", "Linux",
        "--os-distribution", "CentOS", "--os-version", "7.9", "--os-arch", "x86_64",
        "--min-ram-mb", "2048", "--boot-mode", "uefi", "--unprotected",
    )  # fmt: skip
    member("host-image", "update", web, "--description", "web tier", "--disk-driver", "virtio")
    member("host-image", "protect", web)
    admin("host-image", "share", web, "--projects", tenant.project)  # own project: dropped
    admin("host-image", "share", web, "--everyone")

    def check(case: str, *args: str) -> None:
        golden(case, normalise(member(*args).stdout, names))

    check("host_image_list", "host-image", "list", "--project", tenant.project, "--sort", "name")
    check("host_image_show", "host-image", "show", web)
    check("sub_images", "host-image", "sub-images", web)
    check("formats", "host-image", "formats", web)
    # Log entry ids depend on what ran before on the server: renumber them, then render.
    page = member.json("host-image", "logs", web)
    for n, entry in enumerate(page["items"]):
        entry["id"] = 1000 - n
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    log_table(page)
    golden("logs", normalise(capsys.readouterr().out, names))
    check("whoami", "whoami")
    result = member("host-image", "unprotect", web, db, "0" * 32, expect=3)
    golden("batch_results", normalise(result.stdout, names))
    assert result.stderr.strip() == "2 of 3 succeeded."
