"""The operation log tab (F10, §5): marker paging, filters, sub-image entries, refusals."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from tests.api.conftest import Api, World


def _page(api: Api, hid: str, **params: Any) -> dict[str, Any]:
    r = api.get(f"/host-images/{hid}/logs", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _all(api: Api, hid: str, **params: Any) -> list[dict[str, Any]]:
    body = _page(api, hid, limit=1000, **params)
    assert body["next_marker"] is None
    items: list[dict[str, Any]] = body["items"]
    return items


def _ids(entries: list[dict[str, Any]]) -> list[int]:
    return [e["id"] for e in entries]


def _time(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))


def _edit(api: Api, hid: str, n: int, stem: str = "edit") -> None:
    for i in range(n):
        r = api.patch(f"/host-images/{hid}", {"description": f"{stem} {i}"})
        assert r.status_code == 200, r.text


def test_paging_is_gap_and_duplicate_free_while_entries_are_added(world: World) -> None:
    hi = world.host_image("p0a", "paged", disks=2)
    hid = hi["id"]
    _edit(world.admin, hid, 49)  # 50 entries with "create"
    snapshot = _all(world.admin, hid)
    assert len(snapshot) == 50
    ids = _ids(snapshot)
    assert ids == sorted(ids, reverse=True), "newest first"
    times = [_time(e) for e in snapshot]
    assert times == sorted(times, reverse=True)
    assert snapshot[-1]["action"] == "create"

    pages: list[list[dict[str, Any]]] = []
    body = _page(world.admin, hid)  # default limit: 20
    while True:
        pages.append(body["items"])
        # entries keep arriving between page fetches (they are newer than any marker)
        _edit(world.admin, hid, 3, stem=f"during page {len(pages)}")
        if body["next_marker"] is None:
            break
        body = _page(world.admin, hid, marker=body["next_marker"])
    assert [len(p) for p in pages] == [20, 20, 10]
    walked = [e for p in pages for e in p]
    assert _ids(walked) == ids, "every entry exactly once, newest first"
    # the entries added meanwhile are all there, ahead of the snapshot
    now = _all(world.admin, hid)
    assert len(now) == 50 + 3 * len(pages)
    assert _ids(now)[3 * len(pages) :] == ids


def test_marker_paging_with_small_pages_and_limit_bounds(world: World) -> None:
    hid = world.host_image("p0a", "bounds", disks=1)["id"]
    _edit(world.admin, hid, 4)
    everything = _ids(_all(world.admin, hid))
    walked: list[int] = []
    body = _page(world.admin, hid, limit=1)
    while True:
        assert len(body["items"]) == 1
        walked += _ids(body["items"])
        if body["next_marker"] is None:
            break
        body = _page(world.admin, hid, limit=1, marker=body["next_marker"])
    assert walked == everything
    # a page that ends exactly at the last entry has no next marker
    assert _page(world.admin, hid, limit=5)["next_marker"] is None
    assert _page(world.admin, hid, limit=4)["next_marker"] is not None
    for bad in (0, -1, 1001):
        r = world.admin.get(f"/host-images/{hid}/logs", params={"limit": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert len(_page(world.admin, hid, limit=1000)["items"]) == 5


def test_since_is_inclusive_and_until_exclusive(world: World) -> None:
    hid = world.host_image("p0a", "times", disks=1)["id"]
    _edit(world.admin, hid, 6)
    entries = _all(world.admin, hid)
    pivot = entries[3]
    t = pivot["time"]
    since = _all(world.admin, hid, since=t)
    until = _all(world.admin, hid, until=t)
    assert pivot["id"] in _ids(since) and pivot["id"] not in _ids(until)
    assert _ids(since) == [e["id"] for e in entries if _time(e) >= _time(pivot)]
    assert _ids(until) == [e["id"] for e in entries if _time(e) < _time(pivot)]
    assert sorted(_ids(since) + _ids(until), reverse=True) == _ids(entries)
    # the same instant written with another UTC offset selects the same entries
    shifted = _time(pivot).astimezone(timezone(timedelta(hours=8))).isoformat()
    assert _ids(_all(world.admin, hid, since=shifted)) == _ids(since)
    assert _ids(_all(world.admin, hid, until=shifted)) == _ids(until)
    # a window [since, until) of one entry's own time is empty; around it, that entry
    assert _all(world.admin, hid, since=t, until=t) == []
    window = _all(world.admin, hid, since=t, until=entries[2]["time"])
    assert _ids(window) == [
        e["id"] for e in entries if _time(pivot) <= _time(e) < _time(entries[2])
    ]
    assert pivot["id"] in _ids(window)
    # paging within a filter
    first = _page(world.admin, hid, since=t, limit=2)
    rest = _page(world.admin, hid, since=t, limit=1000, marker=first["next_marker"])
    assert _ids(first["items"]) + _ids(rest["items"]) == _ids(since)


def test_action_and_success_filters(world: World) -> None:
    hi = world.host_image("p0a", "filters", disks=1)
    hid = hi["id"]
    viewer = world.add_user("filters-viewer", "viewer", "p0a")
    _edit(world.admin, hid, 2)
    assert world.admin.post(f"/host-images/{hid}/share", {"scope": "system"}).status_code == 200
    assert viewer.patch(f"/host-images/{hid}", {"description": "nope"}).status_code == 403
    assert world.admin.post(f"/host-images/{hid}/share", {"scope": "none"}).status_code == 200
    everything = _all(world.admin, hid)
    for action in ("create", "update", "share", "unshare"):
        got = _all(world.admin, hid, action=action)
        assert got and all(e["action"] == action for e in got)
        assert _ids(got) == [e["id"] for e in everything if e["action"] == action]
    assert [e["success"] for e in _all(world.admin, hid, action="update")] == [False, True, True]
    failed = _all(world.admin, hid, success="false")
    assert [(e["action"], e["actor_user_name"]) for e in failed] == [("update", "filters-viewer")]
    assert len(_all(world.admin, hid, success="true")) == len(everything) - 1
    assert _all(world.admin, hid, action="update", success="false") == failed
    assert _all(world.admin, hid, action="delete") == []


def test_sub_image_entries_are_in_the_host_images_log(world: World) -> None:
    hi = world.host_image("p0a", "with-subs", disks=3)
    hid = hi["id"]
    sub = hi["sub_images"][2]
    r = world.admin.patch(f"/images/{sub['id']}", {"description": "third disk"})
    assert r.status_code == 200, r.text
    entries = _all(world.admin, hid)
    mine = [e for e in entries if e["obj_type"] == "image"]
    assert len(mine) == 1
    assert mine[0]["obj_id"] == sub["id"] and mine[0]["action"] == "update"
    assert mine[0]["obj_name"] == sub["name"]
    assert entries[0]["id"] == mine[0]["id"], "newest first, sub-image entries interleaved"
    assert _all(world.admin, hid, action="update") == mine
    # anyone who can see the host image reads its log, sub-image entries included
    viewer = world.add_user("subs-viewer", "viewer", "p0a")
    assert _all(viewer, hid) == entries


def _entries(world: World, hid: str) -> list[dict[str, Any]]:
    return _all(world.admin, hid)


def test_refusals_on_visible_objects_are_logged_as_failures(world: World) -> None:
    hi = world.host_image("p0a", "refused", disks=2)  # protected by default
    hid = hi["id"]
    member = world.add_user("ref-member", "member", "p0a")
    viewer = world.add_user("ref-viewer", "viewer", "p0a")
    da_other = world.add_user("ref-da1", "domainadmin", "D1", domain="D1")
    outsider = world.add_user("ref-outsider", "member", "p0b")
    p0b = world.projects["p0b"]
    tries: list[tuple[Api, str, str, dict[str, Any] | None, int, str]] = [
        (viewer, "PATCH", "", {"description": "x"}, 403, "update"),
        (viewer, "POST", "/protection", {"protected": False}, 403, "set_protection"),
        (viewer, "DELETE", "", None, 403, "delete"),
        (member, "POST", "/share", {"scope": "system"}, 403, "share"),
        (member, "POST", "/share", {"scope": "none"}, 403, "unshare"),
        (member, "POST", "/change-project", {"project_id": p0b}, 403, "change_project"),
        (member, "DELETE", "", None, 409, "delete"),  # protected
    ]
    for api, method, suffix, body, status, action in tries:
        before = _entries(world, hid)
        kw = {"json": body} if body is not None else {}
        r = api.request(method, f"/host-images/{hid}{suffix}", **kw)
        assert r.status_code == status, (action, r.text)
        after = _entries(world, hid)
        assert len(after) == len(before) + 1, action
        entry = after[0]
        assert entry["action"] == action and entry["success"] is False, entry
        assert entry["actor_user_name"] == api.me["user"]["name"]
        assert entry["obj_id"] == hid and entry["obj_type"] == "host_image"
        assert entry["notes"], "the refusal says why"
    # 409: renaming onto a taken name
    world.host_image("p0a", "taken", disks=1)
    r = member.patch(f"/host-images/{hid}", {"name": "taken"})
    assert r.status_code == 409, r.text
    entry = _entries(world, hid)[0]
    assert (entry["action"], entry["success"], entry["actor_user_name"]) == (
        "update",
        False,
        "ref-member",
    )
    # 409: change project while shared, by someone allowed to change the project
    assert world.admin.post(f"/host-images/{hid}/share", {"scope": "system"}).status_code == 200
    before = _entries(world, hid)
    r = world.admin.post(f"/host-images/{hid}/change-project", {"project_id": p0b})
    assert r.status_code == 409, r.text
    after = _entries(world, hid)
    assert len(after) == len(before) + 1
    assert (after[0]["action"], after[0]["success"]) == ("change_project", False)
    # visible through the system share but not theirs: 403, logged
    r = da_other.patch(f"/host-images/{hid}", {"description": "x"})
    assert r.status_code == 403, r.text
    assert _entries(world, hid)[0]["actor_user_name"] == "ref-da1"
    # invisible: 404 and nothing logged
    assert world.admin.post(f"/host-images/{hid}/share", {"scope": "none"}).status_code == 200
    before = _entries(world, hid)
    for method, suffix, body in (
        ("PATCH", "", {"description": "x"}),
        ("POST", "/protection", {"protected": False}),
        ("POST", "/share", {"scope": "system"}),
        ("POST", "/change-project", {"project_id": p0b}),
        ("DELETE", "", None),
    ):
        kw = {"json": body} if body is not None else {}
        for api in (outsider, da_other):
            r = api.request(method, f"/host-images/{hid}{suffix}", **kw)
            assert r.status_code == 404, (method, suffix, r.text)
    assert _entries(world, hid) == before
    r = world.admin.get("/logs", params={"obj_id": hid, "limit": 1000})
    assert _ids(r.json()["items"]) == [e["id"] for e in before if e["obj_id"] == hid]


def test_no_entry_for_a_patch_that_changes_nothing(world: World) -> None:
    hi = world.host_image("p0a", "same", disks=2, description="as it was", min_ram_mb=512)
    hid = hi["id"]
    before = _entries(world, hid)
    for body in (
        {},
        {"description": "as it was"},
        {"name": "same", "min_ram_mb": 512},
        {"protected": hi["protected"]},
    ):
        r = world.admin.patch(f"/host-images/{hid}", body)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["updated_at"] == hi["updated_at"]
    assert _entries(world, hid) == before
    r = world.admin.patch(f"/host-images/{hid}", {"description": "now changed", "min_ram_mb": 512})
    assert r.status_code == 200
    after = _entries(world, hid)
    assert len(after) == len(before) + 1
    assert after[0]["notes"]["changes"] == {"description": ["as it was", "now changed"]}


def test_logs_of_an_object_moved_out_of_sight_are_not_listed(world: World) -> None:
    """§5: ``GET /logs?obj_id=`` answers an empty list for an object the caller cannot see —
    also when the caller's project owned it before it changed project."""
    hi = world.host_image("p0a", "moved", disks=1)
    hid = hi["id"]
    member = world.add_user("moved-member", "member", "p0a")
    _edit(member, hid, 2)
    assert len(member.get("/logs", params={"obj_id": hid}).json()["items"]) == 3
    r = world.admin.post(
        f"/host-images/{hid}/change-project", {"project_id": world.projects["p0b"]}
    )
    assert r.status_code == 200, r.text
    assert member.get(f"/host-images/{hid}").status_code == 404
    assert member.get(f"/host-images/{hid}/logs").status_code == 404
    r = member.get("/logs", params={"obj_id": hid})
    assert r.status_code == 200
    assert r.json()["items"] == [], [
        (e["action"], e["owner_project_name"]) for e in r.json()["items"]
    ]


def test_bad_time_filters_are_422(world: World) -> None:
    hid = world.host_image("p0a", "badtime", disks=1)["id"]
    for bad in ("not-a-date", "2024-13-01T00:00:00Z"):
        for key in ("since", "until"):
            r = world.admin.get(f"/host-images/{hid}/logs", params={key: bad})
            assert r.status_code == 422, (key, bad, r.text)


def test_batch_items_are_logged_on_their_own(world: World) -> None:
    """F12 + §5: each batch item is logged on its own; a refused item on a visible object is a
    failed entry, an invisible one leaves no entry at all."""
    member = world.add_user("batch-member", "member", "p0a")
    own = world.host_image("p0a", "b-own", disks=1)["id"]
    shared_in = world.host_image("p0b", "b-shared-in", disks=1)["id"]
    hidden = world.host_image("p0b", "b-hidden", disks=1)["id"]
    r = world.admin.post(f"/host-images/{shared_in}/share", {"scope": "domain"})
    assert r.status_code == 200, r.text
    before = {h: _entries(world, h) for h in (own, shared_in, hidden)}
    r = member.post(
        "/host-images/batch",
        {
            "action": "set_protection",
            "ids": [own, shared_in, hidden],
            "params": {"protected": False},
        },
    )
    assert r.status_code == 200, r.text
    statuses = {res["id"]: res["status"] for res in r.json()["results"]}
    assert statuses == {own: 200, shared_in: 403, hidden: 404}
    new = {h: _entries(world, h)[: len(_entries(world, h)) - len(before[h])] for h in before}
    assert [(e["action"], e["success"]) for e in new[own]] == [("set_protection", True)]
    assert [(e["action"], e["success"]) for e in new[shared_in]] == [("set_protection", False)]
    assert new[hidden] == []
    assert new[own][0]["actor_user_name"] == new[shared_in][0]["actor_user_name"] == "batch-member"
