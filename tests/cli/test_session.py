"""A whole operator session: login → upload → compose → share → protect → logs export →
delete, through the CLI only."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import openpyxl

from tests.cli.conftest import USER_PASSWORD, Cli, Tenant, disk, make_tenant, unique


def test_full_session(admin: Cli, tenant: Tenant, tmp_path: Path) -> None:
    member = tenant.member
    # A second login with the password typed at the prompt.
    member("logout")
    out = member(
        "login", "--url", member.url, "--user", tenant.user, input=f"{USER_PASSWORD}\n"
    ).stdout
    assert f"as {tenant.user} (domain Default), project {tenant.project}" in out
    me = member.json("whoami")
    assert me["project"]["name"] == tenant.project
    assert me["views"] == ["project"]

    # Upload two disks: the id alone on stdout, the whole image with -o json.
    root_id = member("image", "upload", str(disk(tmp_path / "root.raw", 2, 1))).stdout.strip()
    assert len(root_id) == 32
    data = member.json("image", "upload", str(disk(tmp_path / "data.img", 1, 2)), "--name", "d1")
    assert data["name"] == "d1"
    assert data["disk_format"] == "raw"
    assert data["status"] == "active"
    assert data["checksum"].startswith("sha256:")

    # Compose (first image = system disk), by id and by name.
    name = unique("web")
    hi = member.json(
        "host-image", "create", name, "--image", root_id, "--image", "d1",
        "--os-type", "Linux", "--os-distribution", "CentOS", "--os-version", "7.9",
    )  # fmt: skip
    hid = hi["id"]
    assert [s["role"] for s in hi["sub_images"]] == ["root", "data"]
    assert hi["protected"] is True
    assert hi["is_standard"] is False
    listed = member.json("host-image", "list", "--name", name)
    assert [h["id"] for h in listed["items"]] == [hid]

    # Edit every kind of attribute.
    member(
        "host-image", "update", name, "--description", "web tier", "--os-arch", "x86_64",
        "--os-language", "en_US", "--disk-driver", "virtio", "--net-driver", "virtio",
        "--min-ram-mb", "2048", "--hypervisor", "kvm", "--boot-mode", "uefi",
    )  # fmt: skip
    shown = member.json("host-image", "show", hid)
    assert shown["description"] == "web tier"
    assert shown["disk_driver"] == "virtio"
    assert (shown["boot_mode"], shown["min_ram_mb"]) == ("uefi", 2048)

    # A member may not share (403, one error line); the admin shares to another project.
    refused = member("host-image", "share", hid, "--projects", tenant.project, expect=1)
    assert refused.stderr.startswith("error: ")
    assert "(403 share_forbidden)" in refused.stderr
    other = make_tenant(admin, member.app, tmp_path / "other")
    admin("host-image", "share", hid, "--projects", other.project)
    seen = other.member.json("host-image", "list")
    assert hid in [h["id"] for h in seen["items"]]
    assert admin.json("host-image", "show", hid)["shared_projects"][0]["name"] == other.project
    admin("host-image", "unshare", hid)
    assert hid not in [h["id"] for h in other.member.json("host-image", "list")["items"]]

    # Protection: delete refused while protected.
    refused = member("host-image", "delete", hid, "--yes", expect=1)
    assert "(409 protected)" in refused.stderr
    member("host-image", "unprotect", hid)
    assert member.json("host-image", "show", hid)["can_delete"] is True
    member("host-image", "protect", hid)
    member("host-image", "unprotect", hid)

    # The log, paged and exported (every matching entry, not one page).
    page = member.json("host-image", "logs", hid, "--limit", "2")
    assert len(page["items"]) == 2
    assert page["next_marker"]
    everything = member.json("host-image", "logs", hid, "--all", "--limit", "3")
    actions = [e["action"] for e in everything["items"]]
    assert {"create", "update", "share", "unshare", "set_protection", "delete"} <= set(actions)
    assert everything["next_marker"] is None
    entry = member.json("log", "show", str(everything["items"][0]["id"]))
    assert entry["obj_id"] == hid

    csv_file = tmp_path / "logs.csv"
    member(
        "host-image", "logs", hid, "--export", str(csv_file),
        "--columns", "id,time,action,success", "--lang", "en",
    )  # fmt: skip
    rows = list(csv.reader(io.StringIO(csv_file.read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["ID", "Time", "Action", "Result"]
    assert [int(r[0]) for r in rows[1:]] == [e["id"] for e in everything["items"]]
    xlsx_file = tmp_path / "logs.xlsx"
    member("host-image", "logs", hid, "--export", str(xlsx_file), "--header", "keys")
    sheet = openpyxl.load_workbook(xlsx_file).active
    assert sheet is not None
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    assert header[:3] == ["id", "time", "obj_type"]
    assert sheet.max_row == len(everything["items"]) + 1
    failures = member.json("host-image", "logs", hid, "--failure", "--action", "delete")
    assert [e["success"] for e in failures["items"]] == [False]

    # Delete: asks first (no → nothing happens), then --yes --wait until the task ends.
    member("host-image", "delete", hid, input="n\n", expect=1)
    assert member.json("host-image", "show", hid)["status"] == "active"
    out = member("host-image", "delete", name, "--yes", "--wait").stdout
    assert f"Deleting host image {name} ({hid}); task " in out
    gone = member("host-image", "show", hid, expect=1)
    assert "(404 not_found)" in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1
    # The log outlives the image.
    kept = member.json("log", "list", "--obj-id", hid, "--action", "delete", "--success")
    assert len(kept["items"]) == 1

    member("logout")
    assert "not logged in" in member("whoami", expect=1).stderr


def test_batch_verbs_report_each_item(tenant: Tenant, tmp_path: Path) -> None:
    member = tenant.member
    img = member("image", "upload", str(disk(tmp_path / "r.raw", 1))).stdout.strip()
    ids = [
        member.json("host-image", "create", unique("b"), "-i", img, "--unprotected")["id"]
        for _ in range(3)
    ]
    doc = member.json("host-image", "update", *ids, "--os-version", "9.4")
    assert [r["ok"] for r in doc["results"]] == [True, True, True]
    assert {member.json("host-image", "show", i)["os_version"] for i in ids} == {"9.4"}
    doc = member.json("host-image", "protect", ids[0], ids[1])
    assert [r["status"] for r in doc["results"]] == [200, 200]

    # Some items fail: exit code 3 and a row per item; all fail: exit code 1.
    partial = member("host-image", "delete", *ids, "--yes", "-o", "json", expect=3)
    results = json.loads(partial.stdout)["results"]
    assert [(r["ok"], r["status"]) for r in results] == [(False, 409), (False, 409), (True, 202)]
    assert results[2]["task_id"]
    assert results[0]["error"]["code"] == "protected"
    member("host-image", "delete", ids[0], ids[1], "--yes", expect=1)
    member("host-image", "unprotect", ids[0], ids[1])
    member("host-image", "delete", ids[0], ids[1], "--yes", "--wait")
