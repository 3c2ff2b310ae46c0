"""Admin nouns (domain, project, user, role, settings), sharing choices, change-project,
and machine-readable output (JSON parsed, YAML parsed)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cli.conftest import USER_PASSWORD, Cli, Tenant, disk, make_tenant, unique


def test_identity_commands(admin: Cli, tmp_path: Path) -> None:
    domain = unique("dom")
    created = admin.json("domain", "create", domain, "--description", "north")
    assert created["name"] == domain
    assert domain in [d["name"] for d in admin.json("domain", "list")["items"]]
    project = unique("p")
    pid = admin.json("project", "create", project, "--description", "CI")["id"]
    listed = admin.json("project", "list", "--domain", "Default")["items"]
    assert {"id": pid, "name": project} in [{"id": p["id"], "name": p["name"]} for p in listed]

    user = unique("user")
    out = admin(
        "user", "create", user, "--display-name", "Nina", "--email", "n@example.com",
        input=f"{USER_PASSWORD}\n{USER_PASSWORD}\n",
    ).stdout  # fmt: skip
    assert "Nina" in out
    assert user in admin("user", "list").stdout
    viewer = admin.json("role", "assign", f"Default/{user}", "viewer", "--project", project)
    assert (viewer["role"], viewer["scope"], viewer["project_id"]) == ("viewer", "project", pid)
    roles = admin.json("role", "list", "--user", user)["items"]
    assert [r["id"] for r in roles] == [viewer["id"]]
    table = admin("role", "list", "--user", user).stdout
    assert f"project {project}" in table
    assert "(400 bad_role)" not in table
    admin("role", "delete", viewer["id"], "--yes")
    assert admin.json("role", "list", "--user", user)["items"] == []
    assert admin("role", "delete", viewer["id"], "--yes", expect=1).stdout.count("failed") == 1


def test_settings_and_domain_sharing(admin: Cli, tenant: Tenant, tmp_path: Path) -> None:
    before = admin.json("settings", "show")
    assert set(before) == {
        "three_level_permissions",
        "target_formats",
        "max_virtual_size_gb",
        "max_upload_size_gb",
    }
    limits = admin.json("settings", "set", "--max-upload-size-gb", "512")
    assert limits["max_upload_size_gb"] == 512 and limits["max_virtual_size_gb"] == 16384
    assert "Max upload size (GiB)" in admin("settings", "show").stdout
    admin("settings", "set", "--max-upload-size-gb", str(before["max_upload_size_gb"]))
    doc = yaml.safe_load(
        admin("settings", "set", "--target-formats", "qcow2,vmdk", "-o", "yaml").stdout
    )
    assert doc["target_formats"] == ["qcow2", "vmdk"]
    admin("settings", "set", "--target-formats", ",".join(before["target_formats"]))

    member = tenant.member
    img = member("image", "upload", str(disk(tmp_path / "r.raw", 1))).stdout.strip()
    name = unique("sh")
    hid = member.json("host-image", "create", name, "-i", img, "--unprotected")["id"]

    # Three-level permissions off: "whole domain" is everyone, domain sharing is refused.
    assert admin.json("host-image", "share", name, "--whole-domain")["share_scope"] == "system"
    r = admin("host-image", "share", name, "--domains", "Default", expect=1)
    assert "(400 three_level_disabled)" in r.stderr
    admin("settings", "set", "--three-level")
    east = unique("east")
    admin("domain", "create", east)
    try:
        assert admin.json("host-image", "share", hid, "--whole-domain")["share_scope"] == "domain"
        shared = admin.json("host-image", "share", hid, "--domains", east)
        assert [d["name"] for d in shared["shared_domains"]] == [east]
        assert admin.json("host-image", "share", hid, "--everyone")["share_scope"] == "system"
    finally:
        admin("host-image", "unshare", hid)
        admin("settings", "set", "--no-three-level")
    assert admin.json("settings", "show")["three_level_permissions"] is False

    # Change project: refused while shared, moved once unshared.
    other = make_tenant(admin, member.app, tmp_path / "other")
    admin("host-image", "share", hid, "--projects", other.project)
    r = admin("host-image", "change-project", hid, "--project", other.project, expect=1)
    assert "(409 shared)" in r.stderr
    admin("host-image", "share", hid, "--none")
    out = admin("host-image", "change-project", hid, "--project", other.project).stdout
    assert f"to project {other.project}" in out
    moved = other.member.json("host-image", "show", hid)
    assert moved["project_name"] == other.project
    assert all(s["project_id"] == other.project_id for s in moved["sub_images"])


def test_json_outputs_are_the_api_answers(tenant: Tenant, tmp_path: Path) -> None:
    member = tenant.member
    img = member.json("image", "upload", str(disk(tmp_path / "r.raw", 1)))
    hi = member.json("host-image", "create", unique("j"), "-i", img["id"], "--unprotected")
    listing = member.json("host-image", "list", "--sort", "name", "--order", "asc", "--limit", "5")
    assert set(listing) == {"items", "total", "limit", "offset"}
    assert listing["limit"] == 5
    assert {"id", "name", "share_scope", "sub_images", "can_delete"} <= set(listing["items"][0])
    every = member.json("host-image", "list", "--all", "--protected")
    assert every["items"] == []
    assert member.json("host-image", "list", "--unprotected", "--all")["total"] == 1
    subs = member.json("host-image", "sub-images", hi["id"])["items"]
    assert [s["index"] for s in subs] == [0]
    formats = member.json("host-image", "formats", hi["id"])["items"]
    assert formats[0]["native"] is True
    me = yaml.safe_load(member("whoami", "-o", "yaml").stdout)
    assert me["user"]["name"] == tenant.user
    logs = yaml.safe_load(member("log", "list", "--obj-id", hi["id"], "-o", "yaml").stdout)
    assert [e["action"] for e in logs["items"]] == ["create"]
    switched = member.json("switch-project", tenant.project)
    assert switched["project"]["name"] == tenant.project
    assert "token" not in switched
    member.json("whoami")  # the stored token still works after the switch
