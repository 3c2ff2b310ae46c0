"""``POST /servers`` with a static address: checked at the request (422 ``invalid_network``),
normalised into the build task, refused without a system disk to write it on."""

from __future__ import annotations

from sqlalchemy import select

from hostimage.db.models import Task
from tests.api.conftest import World, raw_disk


def _body(world: World, image_id: str | None, network: object) -> dict[str, object]:
    disks = [{"image_id": image_id}] if image_id else [{"size_mb": 16}]
    return {
        "name": "static-vm",
        "project_id": world.projects["p0a"],
        "disks": disks,
        "network": network,
    }


def test_a_static_address_is_checked_and_normalised(world: World) -> None:
    img = world.upload(world.admin, "sys", raw_disk(1), project="p0a")["id"]
    for bad in (
        {"address": "10.0.0.300/24"},
        {"address": "10.0.0.5"},  # no prefix
        {"address": "10.0.0.5/24", "gateway": "10.9.9.1"},  # outside the network
        {"address": "10.0.0.5/24", "dns": ["a", "b", "c", "d"]},
        {"address": "10.0.0.5/24", "mac": "52:54:00:00:00:01"},
    ):
        r = world.admin.post("/servers", _body(world, img, bad))
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["code"] in ("invalid_network", "validation_error"), r.text
    r = world.admin.post("/servers", _body(world, None, {"address": "10.0.0.5/24"}))
    assert r.status_code == 400 and r.json()["code"] == "no_os", r.text

    good = {"address": "10.0.0.5/24", "gateway": "10.0.0.1", "dns": ["10.0.0.53"]}
    r = world.admin.post("/servers", _body(world, img, good))
    assert r.status_code == 202, r.text
    with world.worker.rt.factory() as s:
        payload = s.scalar(select(Task.payload).where(Task.id == r.json()["task_id"]))
    assert payload["network"] == good and payload["deploy_identity"] is True
    r = world.admin.post("/servers", _body(world, img, {"address": "2001:db8::0005/64", "dns": []}))
    assert r.status_code == 202, r.text
    with world.worker.rt.factory() as s:
        payload = s.scalar(select(Task.payload).where(Task.id == r.json()["task_id"]))
    assert payload["network"] == {"address": "2001:db8::5/64", "gateway": None, "dns": []}
