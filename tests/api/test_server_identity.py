"""``POST /servers`` refuses a guest identity the build would refuse (422), at the request."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import World, raw_disk
from tests.domain.test_identity import ssh_key


def _server(world: World, **fields: Any) -> Any:
    img = world.upload(world.admin, f"sys-{len(fields)}", raw_disk(1))
    body = {"name": "vm", "disks": [{"image_id": img["id"]}], **fields}
    return world.admin.post("/servers", body)


@pytest.mark.parametrize(
    "fields",
    [
        {"ssh_public_key": "ssh-rsa AAAA\nssh-rsa BBBB"},
        {"ssh_public_key": "ssh-ed25519 !!!!"},
        {"ssh_public_key": ssh_key("ssh-rsa").replace("ssh-rsa", "ssh-ed25519", 1)},
        {"ssh_public_key": ssh_key() + "\n" + ssh_key()},
        {"password": "line\nbreak-password"},
        {"password": "nul\x00character"},
        {"login_user": "Root"},
        {"login_user": "a:b"},
        {"hostname": "bad_host"},
        {"hostname": "a" * 64},
    ],
    ids=lambda f: next(iter(f)),
)
def test_a_bad_identity_is_refused_at_the_request(world: World, fields: dict[str, Any]) -> None:
    r = _server(world, **fields)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "validation_error"
    assert next(iter(fields)) in body["detail"]
    assert world.admin.get("/servers").json()["total"] == 0


def test_a_good_identity_is_accepted(world: World) -> None:
    key = ssh_key("ssh-ed25519", "ops@example")
    r = _server(world, ssh_public_key=key, password="a good password", login_user="deploy.1")
    assert r.status_code == 202, r.text
    assert r.json()["login_user"] == "deploy.1"


def test_a_display_name_that_is_no_hostname_gets_one(world: World) -> None:
    r = _server(world, name="Web Server 1")
    assert r.status_code == 202, r.text
    assert r.json()["hostname"] == "web-server-1"
    r = _server(world, name="网站")
    assert r.json()["hostname"] == "server"
    r = _server(world, name="db1.internal")
    assert r.json()["hostname"] == "db1.internal"
    r = _server(world, name="Anything", hostname="given")
    assert r.json()["hostname"] == "given"
