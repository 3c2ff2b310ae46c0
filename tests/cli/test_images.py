"""``image``: upload, list/show/update, resumable download with checksum check, format copies,
delete."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cli.conftest import USER_PASSWORD, Tenant, disk, unique


def test_upload_download_resume(tenant: Tenant, tmp_path: Path) -> None:
    member = tenant.member
    src = disk(tmp_path / "disk.img", 3, 5)
    img = member.json("image", "upload", str(src), "--os-type", "Linux", "--description", "d")
    assert (img["name"], img["disk_format"], img["os_type"]) == ("disk.img", "raw", "Linux")
    want = "sha256:" + hashlib.sha256(src.read_bytes()).hexdigest()
    assert img["checksum"] == want
    listed = member.json("image", "list", "--standalone", "--name", "disk.img")
    assert [i["id"] for i in listed["items"]] == [img["id"]]
    assert (
        yaml.safe_load(member("image", "show", "disk.img", "-o", "yaml").stdout)["id"] == img["id"]
    )
    member("image", "update", img["id"], "--name", "disk2.img", "--description", "renamed")
    assert member.json("image", "show", img["id"])["description"] == "renamed"

    # Whole download into a directory: NAME.FORMAT.
    out = tmp_path / "out"
    out.mkdir()
    r = member("image", "download", img["id"], "--output", str(out))
    assert (out / "disk2.img.raw").read_bytes() == src.read_bytes()
    assert want in r.stdout
    # Refuses to overwrite without --force.
    assert "exists" in member("image", "download", img["id"], "-O", str(out), expect=2).stderr

    # Resume: a .part file with the first bytes; only the rest is asked for (206).
    target = tmp_path / "resumed.raw"
    target.with_name("resumed.raw.part").write_bytes(src.read_bytes()[:1_000_000])
    r = member("image", "download", img["id"], "-O", str(target), "--debug")
    assert "DEBUG < 206 Partial Content" in r.stderr
    assert target.read_bytes() == src.read_bytes()
    assert not target.with_name("resumed.raw.part").exists()

    # A corrupt partial file is caught by the checksum and removed.
    bad = tmp_path / "bad.raw"
    bad.with_name("bad.raw.part").write_bytes(b"\xff" * 4096)
    r = member("image", "download", img["id"], "-O", str(bad), expect=1)
    assert "checksum mismatch" in r.stderr
    assert not bad.exists() and not bad.with_name("bad.raw.part").exists()

    # Upload refused by the server: the empty image is removed again.
    fake = tmp_path / "fake.qcow2"
    fake.write_bytes(b"\0" * 65536)
    r = member("image", "upload", str(fake), expect=1)
    assert "(400 format_mismatch)" in r.stderr
    left = member.json("image", "list", "--name", "fake.qcow2")["items"]
    assert {i["status"] for i in left} <= {"deleting"}

    unknown = tmp_path / "disk.bin"
    unknown.write_bytes(b"\0" * 512)
    assert "cannot tell the format" in member("image", "upload", str(unknown), expect=2).stderr
    member("image", "delete", img["id"], "--yes", "--wait")


def test_format_copy_download(tenant: Tenant, tmp_path: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    member = tenant.member
    img = member("image", "upload", str(disk(tmp_path / "root.raw", 2, 3))).stdout.strip()
    name = unique("conv")
    member("host-image", "create", name, "-i", img, "--unprotected")
    member("host-image", "convert", name, "--format", "qcow2", "--wait")
    copies = member.json("host-image", "formats", name)["items"]
    assert {(c["format"], c["status"]) for c in copies} == {("raw", "active"), ("qcow2", "active")}
    sub = member.json("host-image", "sub-images", name)["items"][0]["id"]
    target = tmp_path / "root.qcow2"
    member("image", "download", sub, "--format", "qcow2", "-O", str(target))
    assert target.read_bytes()[:4] == b"QFI\xfb"


def test_a_killed_image_takes_a_new_upload(tenant: Tenant, tmp_path: Path) -> None:
    """An upload the server refuses into an existing image leaves it killed with the reason;
    ``--image-id`` then uploads the right file into the same image."""
    member = tenant.member
    disk(tmp_path / "a.raw", 1)
    token = httpx.post(
        f"{member.url}/api/v1/auth/login",
        json={"username": tenant.user, "password": USER_PASSWORD},
    ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    iid = httpx.post(
        f"{member.url}/api/v1/images",
        json={"name": unique("declared-qcow2"), "disk_format": "qcow2"},
        headers=auth,
    ).json()["id"]
    refused = member("image", "upload", str(tmp_path / "a.raw"), "--image-id", iid, expect=1)
    assert "(400 format_mismatch)" in refused.stderr
    assert f"retry with --image-id {iid}" not in refused.stderr  # not created by this command
    shown = member.json("image", "show", iid)
    assert shown["status"] == "killed" and shown["status_reason"]
    qcow2 = tmp_path / "b.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "8M"], check=True)
    done = member.json("image", "upload", str(qcow2), "--image-id", iid)
    assert done["status"] == "active" and done["status_reason"] is None
