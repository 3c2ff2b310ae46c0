"""``server`` and ``task``: create with progress, start/stop, save-image --wait, VMs from a host
image, delete; Ctrl-C while following a task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer

from hostimage.cli import tasks
from tests.cli.conftest import Tenant, disk, unique


def test_save_image_from_a_server(tenant: Tenant) -> None:
    member = tenant.member
    name = unique("vm")
    vm = member.json(
        "server", "create", name, "--disk", "16M", "--disk", "8M", "--os-type", "Linux"
    )
    assert vm["status"] == "ready"
    assert [d["size"] for d in vm["disks"]] == [16 << 20, 8 << 20]
    assert [s["id"] for s in member.json("server", "list", "--name", name)["items"]] == [vm["id"]]
    # The built-in inventory is a host: a HOST column, a --host filter and the host in show.
    assert (vm["host_id"], vm["external_id"], vm["created_here"]) == ("builtin", None, True)
    lines = member("server", "list", "--name", name, "--host", "builtin").stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "HOST", "STATUS"]
    assert lines[2].split()[:4] == [vm["id"], name, "builtin", "ready"]
    shown = member("server", "show", name).stdout
    assert "Host          builtin" in shown and "Created here  yes" in shown
    assert shown.split("Disks\n", 1)[1].split("\n")[0].split() == [
        "INDEX", "SIZE", "FORMAT", "FROM", "IMAGE"
    ]  # fmt: skip
    assert "is running" in member("server", "start", name).stdout
    refused = member("server", "save-image", name, "--name", unique("saved"), expect=1)
    assert "(409 server_not_stopped)" in refused.stderr
    member("server", "stop", vm["id"])

    saved = unique("saved")
    hi = member.json("server", "save-image", name, "--name", saved, "--unprotected", "--wait")
    assert (hi["name"], hi["status"], hi["is_standard"]) == (saved, "active", True)
    assert hi["sub_image_count"] == 2
    assert hi["source_server_id"] == vm["id"]

    r = member("server", "delete", vm["id"], "--yes", "-o", "json")
    task_id = json.loads(r.stdout)["results"][0]["task_id"]
    task = member.json("task", "wait", task_id)
    assert task["status"] == "succeeded"
    assert member.json("task", "show", task["id"])["progress"] == 100


def test_server_from_a_host_image(tenant: Tenant, tmp_path: Path) -> None:
    member = tenant.member
    root = member("image", "upload", str(disk(tmp_path / "root.raw", 2))).stdout.strip()
    data = member("image", "upload", str(disk(tmp_path / "data.raw", 1, 3))).stdout.strip()
    hname = unique("tpl")
    hid = member.json("host-image", "create", hname, "-i", root, "-i", data)["id"]
    # The disks come from the sub-images in order; --disk adds a blank one; progress is
    # followed until the task ends.
    vm = member.json("server", "create", unique("clone"), "--host-image", hname, "--disk", "8M")
    assert vm["host_image_id"] == hid
    assert vm["status"] == "ready"
    assert [d["size"] for d in vm["disks"]] == [2 << 20, 1 << 20, 8 << 20]
    member("server", "delete", vm["id"], "--yes", "--wait")


def test_create_without_wait_then_task_wait(tenant: Tenant) -> None:
    member = tenant.member
    r = member("server", "create", unique("vm"), "--disk", "1G", "--no-wait")
    assert "hostimage task wait" in r.stderr
    task_id = r.stderr.rsplit(" ", 1)[-1].strip()
    done = member.json("task", "wait", task_id, "--timeout", "60")
    assert (done["kind"], done["status"]) == ("create_server", "succeeded")
    shown = member("task", "show", task_id).stdout
    assert "succeeded" in shown and "100%" in shown


def test_ctrl_c_leaves_the_task_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class FakeApi:
        def get(self, path: str) -> dict[str, Any]:
            return {"id": "t1", "kind": "save_host_image", "status": "running", "progress": 40}

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tasks, "api", lambda: FakeApi())
    monkeypatch.setattr(tasks.time, "sleep", interrupt)
    with pytest.raises(typer.Exit) as exc:
        tasks.follow("t1", "save")
    assert exc.value.exit_code == 130
    err = capsys.readouterr().err
    assert "task t1 keeps running" in err
    assert "hostimage task wait t1" in err


def test_failed_task_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeApi:
        def get(self, path: str) -> dict[str, Any]:
            return {"id": "t2", "kind": "convert", "status": "failed", "progress": 10,
                    "error": "qemu-img failed"}  # fmt: skip

    monkeypatch.setattr(tasks, "api", lambda: FakeApi())
    with pytest.raises(tasks.CliError, match="qemu-img failed"):
        tasks.follow("t2", "convert")


def test_a_static_address_is_checked_when_the_server_is_asked_for(tenant: Tenant) -> None:
    member = tenant.member
    r = member("server", "create", unique("vm"), "--disk", "8M", "--gateway", "10.0.0.1", expect=2)
    assert "--gateway and --dns go with --address" in r.stderr
    r = member(
        "server", "create", unique("vm"), "--disk", "8M", "--address", "10.0.0.5/24", expect=1
    )
    assert "(400 no_os)" in r.stderr  # a blank disk has nowhere to write it


def test_host_options_are_checked_before_asking(tenant: Tenant) -> None:
    member = tenant.member
    r = member("server", "create", unique("vm"), "--disk", "8M", "--memory", "1T", expect=2)
    assert "--memory '1T': give a size" in r.stderr
    r = member("server", "create", unique("vm"), "--disk", "8M", "--vcpus", "0", expect=2)
    assert "--vcpus" in r.stderr
    r = member("server", "list", "--host", unique("nohost"), expect=1)
    assert "no host named" in r.stderr
