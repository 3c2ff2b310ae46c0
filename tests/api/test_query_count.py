"""No N+1: listing host images and reading an operation log take a number of SQL statements
that does not depend on how many rows are shown (counted with ``before_cursor_execute`` on
the app's engine)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.api.conftest import Api
from tests.api.helpers_rbac import ModuleWorld, StatementCounter, module_world

# where the images go and how they are shared, cycled over: every view of the callers below
# (sysadmin: system; domainadmin of D1: domain; member of p1a: project) sees most of them, with
# sub-images and share targets to load for each.
LAYOUT: list[tuple[str, dict[str, Any] | None]] = [
    ("p1a", None),
    ("p1a", {"scope": "project", "project_ids": ["p1b"]}),
    ("p1b", {"scope": "project", "project_ids": ["p1a"]}),
    ("p1b", {"scope": "domain"}),
    ("p1a", {"scope": "domain", "domain_ids": ["D2", "Default"]}),
    ("p2a", {"scope": "domain", "domain_ids": ["D1"]}),
    ("p0a", {"scope": "system"}),
    ("p2b", None),
]


class Counting:
    def __init__(self, mw: ModuleWorld, callers: dict[str, Api]) -> None:
        self.mw = mw
        self.callers = callers
        self.images: list[dict[str, Any]] = []

    def add_images(self, upto: int) -> None:
        """Compose host images (1–4 sub-images each) until there are ``upto`` of them."""
        mw = self.mw
        while len(self.images) < upto:
            n = len(self.images)
            project, share = LAYOUT[n % len(LAYOUT)]
            hi = mw.compose(project, disks=1 + n % len(mw.sources))
            if share:
                body = dict(share)
                if "project_ids" in body:
                    body["project_ids"] = [mw.pid(p) for p in body["project_ids"]]
                if "domain_ids" in body:
                    body["domain_ids"] = [mw.did(d) for d in body["domain_ids"]]
                hi = mw.share(hi["id"], body)
            self.images.append(hi)

    def count(self, api: Api, path: str, **params: Any) -> tuple[int, Any]:
        """Statements one request takes (asked twice: the second may save the one statement
        that counts the list's total, remembered until the catalogue changes)."""
        counts = []
        body: Any = None
        for _ in range(2):
            with StatementCounter(self.mw.engine) as counter:
                r = api.get(path, params=params)
            assert r.status_code == 200, r.text
            counts.append(counter.count)
            body = r.json()
        assert counts[1] <= counts[0] <= counts[1] + 1, counts
        return counts[0], body


@pytest.fixture(scope="module")
def counting(
    database: tuple[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Counting]:
    with module_world(database, tmp_path_factory.mktemp("count-data"), sources=4) as mw:
        callers = {}
        for view, role, target in (
            ("system", "sysadmin", None),
            ("domain", "domainadmin", "D1"),
            ("project", "member", "p1a"),
        ):
            mw.add_user(f"count-{view}", role, target, "D1")
            callers[view] = mw.login(f"count-{view}", "p1a", "D1")
        yield Counting(mw, callers)


VIEWS = ("project", "domain", "system")


def test_list_statements_do_not_grow_with_the_page(counting: Counting) -> None:
    counting.add_images(5)
    small: dict[str, tuple[int, int]] = {}
    for view in VIEWS:
        n, body = counting.count(counting.callers[view], "/host-images", scope=view, limit=100)
        small[view] = (n, len(body["items"]))
    counting.add_images(50)
    for view in VIEWS:
        n, body = counting.count(counting.callers[view], "/host-images", scope=view, limit=100)
        shown_small = small[view][1]
        assert len(body["items"]) >= 5 * max(shown_small, 1) and shown_small >= 3, (view, body)
        assert any(item["sub_image_count"] > 1 for item in body["items"])
        assert any(
            item["shared_project_ids"] or item["shared_domain_ids"] for item in body["items"]
        )
        assert n == small[view][0], (
            f"{view} view: {small[view][0]} statements for {shown_small} images, "
            f"{n} for {len(body['items'])}"
        )


def _log_entries(mw: ModuleWorld, hi: dict[str, Any], n: int) -> None:
    """Add ``n`` entries to a host image's log: edits of it and of its sub-images, shares."""
    for i in range(n):
        hid = hi["id"]
        if i % 3 == 0:
            r = mw.admin.patch(f"/host-images/{hid}", {"description": f"edit {i}"})
        elif i % 3 == 1:
            sub = hi["sub_images"][i % len(hi["sub_images"])]["id"]
            r = mw.admin.patch(f"/images/{sub}", {"description": f"edit {i}"})
        else:
            scope = "system" if i % 2 == 0 else "none"
            r = mw.admin.post(f"/host-images/{hid}/share", {"scope": scope})
        assert r.status_code == 200, r.text


def test_log_statements_do_not_grow_with_the_page(counting: Counting) -> None:
    mw = counting.mw
    few = mw.compose("p1a", disks=3)
    many = mw.compose("p1a", disks=3)
    _log_entries(mw, few, 4)
    _log_entries(mw, many, 60)
    for view in VIEWS:
        api = counting.callers[view]
        n_few, body_few = counting.count(api, f"/host-images/{few['id']}/logs", limit=100)
        n_many, body_many = counting.count(api, f"/host-images/{many['id']}/logs", limit=100)
        assert len(body_few["items"]) == 5 and len(body_many["items"]) == 61
        assert {e["obj_type"] for e in body_many["items"]} == {"host_image", "image"}
        assert n_few == n_many, (view, n_few, n_many)
        n_few, body_few = counting.count(api, "/logs", obj_id=few["id"], limit=100)
        n_many, body_many = counting.count(api, "/logs", obj_id=many["id"], limit=100)
        assert len(body_few["items"]) == 4 and len(body_many["items"]) == 41
        assert n_few == n_many, (view, n_few, n_many)


def _sent(counter: StatementCounter) -> list[str]:
    """The statements a request sent, without transaction control."""
    control = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE")
    return [s for s in counter.statements if not s.lstrip().upper().startswith(control)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # token, lock (+ names, setting, sub-images, share targets), host image, log entry,
        # revision bump
        ({"description": "x"}, 5),
        # + the name check comes with the lock, + one UPDATE renames the sub-images
        ({"name": "renamed"}, 6),
    ],
)
def test_a_patch_sends_a_fixed_set_of_statements(
    counting: Counting, change: dict[str, Any], expected: int
) -> None:
    mw = counting.mw
    hi = mw.compose("p1a", disks=3)
    change = {k: f"{v}-{hi['id'][:8]}" for k, v in change.items()}
    with StatementCounter(mw.engine) as counter:
        r = mw.admin.patch(f"/host-images/{hi['id']}", change)
    assert r.status_code == 200, r.text
    sent = _sent(counter)
    assert len(sent) == expected, "\n".join(sent)
    assert sum("INSERT INTO op_logs" in s for s in sent) == 1
    assert r.json() == mw.admin.get(f"/host-images/{hi['id']}").json()
