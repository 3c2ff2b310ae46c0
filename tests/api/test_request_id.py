"""``X-Request-ID`` (SPEC §9.1): a well-formed id is kept, anything else replaced, and every
answer echoes the id used — errors, unknown routes and streamed bodies included."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hostimage.api.middleware import accepted_request_id
from tests.api.conftest import Api, World, raw_disk

GENERATED = re.compile(r"^[0-9a-f]{32}$")


def test_which_ids_are_kept() -> None:
    for good in ("a", "abc-DEF_123.x", "x" * 64, "0.1-2_3"):
        assert accepted_request_id(good) == good
    for bad in (None, "", "x" * 65, "has space", "semi;colon", "ünïcode", "a/b", "a\nb", "%41"):
        assert GENERATED.match(accepted_request_id(bad)), bad


def _last_entry(world: World, hid: str) -> dict[str, Any]:
    items = world.admin.get(f"/host-images/{hid}/logs").json()["items"]
    entry: dict[str, Any] = items[0]
    return entry


def test_a_good_id_is_kept_and_logged(world: World) -> None:
    hi = world.host_image("p0a", "rid", disks=1)
    rid = "client-1234.abc_DEF" + "x" * 45
    assert len(rid) == 64
    r = world.admin.patch(
        f"/host-images/{hi['id']}", {"description": "x"}, headers={"X-Request-ID": rid}
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == rid
    assert _last_entry(world, hi["id"])["request_id"] == rid


@pytest.mark.parametrize(
    "given", ["y" * 65, "x" * 1000, "with space", 'quote"d', "<script>", "中文"]
)
def test_a_bad_id_is_replaced_and_the_write_succeeds(world: World, given: str) -> None:
    hi = world.host_image("p0a", "rid", disks=1)
    raw = given.encode("utf-8")
    r = world.client.patch(
        f"/api/v1/host-images/{hi['id']}",
        json={"description": "changed"},
        headers=[("Authorization", f"Bearer {world.admin.token}"), ("X-Request-ID", raw)],  # type: ignore[list-item]
    )
    assert r.status_code == 200, r.text
    used = r.headers["x-request-id"]
    assert GENERATED.match(used) and used != given
    assert _last_entry(world, hi["id"])["request_id"] == used


def test_every_answer_echoes_the_id(world: World) -> None:
    anonymous = Api(world.client)
    img = world.upload(world.admin, "echo", raw_disk(3))
    h = {"X-Request-ID": "echo-1"}
    answers = {
        "unknown route": world.client.get("/api/v1/no-such-thing", headers=h),
        "wrong method": world.client.put("/api/v1/host-images", headers=h),
        "401": anonymous.get("/host-images", headers=h),
        "422": world.admin.get("/host-images", params={"limit": 0}, headers=h),
        "404": world.admin.get("/host-images/nope", headers=h),
        "ok": world.admin.get("/host-images", headers=h),
        "stream": world.admin.get(f"/images/{img['id']}/data", headers=h),
        "health": world.client.get("/healthz", headers=h),
    }
    for what, r in answers.items():
        assert r.headers.get("x-request-id") == "echo-1", what
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json"), what
            assert r.json()["request_id"] == "echo-1", what
    assert answers["stream"].content == raw_disk(3)
    # without an id, one is made and echoed
    r = world.admin.get("/host-images")
    assert GENERATED.match(r.headers["x-request-id"])
