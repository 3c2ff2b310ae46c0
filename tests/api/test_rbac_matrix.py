"""The RBAC matrix (SPEC §2, F3–F7, §5): role × action × current share scope × owner location.

The caller works in project p1a of domain D1. Each case composes a fresh host image owned
somewhere relative to the caller, shares it (as admin) to one of the five scopes, then lets
the caller try one action and checks the exact status code the spec gives:

* invisible → 404 (never 403);
* visible but not allowed → 403;
* allowed but the state forbids it (change project while shared) → 409;
* otherwise 200 (202 for delete).

A refused action must leave the host image exactly as it was; an accepted one must have
its effect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.api.conftest import Api
from tests.api.helpers_rbac import ModuleWorld, module_world

# ---------------------------------------------------------------------------------------------
# The expectation table, in the words of the spec.
# ---------------------------------------------------------------------------------------------

ROLES = ("sysadmin", "domainadmin", "member", "viewer")
"""sysadmin; domainadmin of the caller's domain D1; member / viewer of the caller's project p1a."""

LOCATIONS = ("own_project", "same_domain", "other_domain")
"""Where the image's owner project is, seen from the caller (p1a in D1)."""

OWNER = {"own_project": "p1a", "same_domain": "p1b", "other_domain": "p2a"}

SCOPES = ("none", "project_partial", "domain_whole", "domain_partial", "system")
"""The image's current share scope: the five console choices of F4 (不共享, 项目共享-部分,
项目共享-全部, 域共享-部分, 域共享-全部). Partial shares point at the caller where the rules
allow it: a project share at p1a (when the owner is in D1 but not p1a; a D2 image can only be
shared to D2's projects), a domain share at D1 (when the owner is not in D1)."""

PROJECT_TARGET = {"own_project": "p1b", "same_domain": "p1a", "other_domain": "p2b"}
DOMAIN_TARGET = {"own_project": "D2", "same_domain": "D2", "other_domain": "D1"}

ALL = frozenset(SCOPES)
SHARED_TO_D1 = frozenset({"domain_partial", "system"})

# SPEC §2 views. sysadmin sees everything. A domainadmin of D1 (current project p1a) sees its
# domain view (everything owned in D1, system shares, shares to D1) and its project view.
# member and viewer see the project view of p1a: owned by p1a, system-shared, domain-shared
# (whole) in D1, shared to p1a, shared to D1 — for a p1b image every share reaches p1a.
SEES: dict[str, dict[str, frozenset[str]]] = {
    "sysadmin": {"own_project": ALL, "same_domain": ALL, "other_domain": ALL},
    "domainadmin": {"own_project": ALL, "same_domain": ALL, "other_domain": SHARED_TO_D1},
    "member": {"own_project": ALL, "same_domain": ALL - {"none"}, "other_domain": SHARED_TO_D1},
    "viewer": {"own_project": ALL, "same_domain": ALL - {"none"}, "other_domain": SHARED_TO_D1},
}

# SPEC §2 roles / F3, F6, F7: who may update, protect and delete, by owner location.
# Shared-in images are read-only for everyone but their owner's admins.
MANAGES: dict[str, frozenset[str]] = {
    "sysadmin": frozenset(LOCATIONS),
    "domainadmin": frozenset({"own_project", "same_domain"}),
    "member": frozenset({"own_project"}),
    "viewer": frozenset(),
}

# SPEC F4: not sharing and project sharing (partial, or the whole own domain) are domain-admin
# business; sharing to other domains or to everyone is sysadmin business. The caller must reach
# both the wanted scope and the image's current one.
SHARE_LEVEL = {
    "none": "domain",
    "project_partial": "domain",
    "domain_whole": "domain",
    "domain_partial": "system",
    "system": "system",
}
REACHES: dict[str, dict[str, frozenset[str]]] = {
    "sysadmin": {"domain": frozenset(LOCATIONS), "system": frozenset(LOCATIONS)},
    "domainadmin": {"domain": frozenset({"own_project", "same_domain"}), "system": frozenset()},
    "member": {"domain": frozenset(), "system": frozenset()},
    "viewer": {"domain": frozenset(), "system": frozenset()},
}

# SPEC F5: sysadmin anywhere; domainadmin within its domain (both ends in D1); never while
# the image is shared (409). "within" = to another project of the owner's domain,
# "across" = to a project of another domain.
MOVE_TARGET = {
    ("own_project", "within"): "p1b",
    ("same_domain", "within"): "p1a",
    ("other_domain", "within"): "p2b",
    ("own_project", "across"): "p2a",
    ("same_domain", "across"): "p2a",
    ("other_domain", "across"): "p1a",
}
MOVES: dict[str, frozenset[tuple[str, str]]] = {
    "sysadmin": frozenset(MOVE_TARGET),
    "domainadmin": frozenset({("own_project", "within"), ("same_domain", "within")}),
    "member": frozenset(),
    "viewer": frozenset(),
}

ACTIONS = (
    "get",
    "update",
    "unshare",  # share {"scope":"none"} — 不共享
    "share:project_partial",
    "share:domain_whole",
    "share:domain_partial",
    "share:system",
    "change_project:within",
    "change_project:across",
    "set_protection",
    "delete",
)


def expected(role: str, action: str, scope: str, loc: str) -> int:
    """The status code the spec gives ``role`` doing ``action`` on an image owned at ``loc``
    and currently shared at ``scope``."""
    if scope not in SEES[role][loc]:
        return 404
    if action == "get":
        return 200
    if action in ("update", "set_protection"):
        return 200 if loc in MANAGES[role] else 403
    if action == "delete":
        return 202 if loc in MANAGES[role] else 403
    if action == "unshare" or action.startswith("share:"):
        wanted = "none" if action == "unshare" else action.split(":", 1)[1]
        levels = {SHARE_LEVEL[wanted], SHARE_LEVEL[scope]}
        return 200 if all(loc in REACHES[role][level] for level in levels) else 403
    if action.startswith("change_project:"):
        where = action.split(":", 1)[1]
        if (loc, where) not in MOVES[role]:
            return 403
        return 409 if scope != "none" else 200
    raise AssertionError(action)


@dataclass(frozen=True)
class Case:
    role: str
    action: str
    scope: str
    loc: str

    @property
    def status(self) -> int:
        return expected(self.role, self.action, self.scope, self.loc)

    def __str__(self) -> str:
        return f"{self.role}-{self.action}-{self.scope}-{self.loc}->{self.status}"


CASES = [
    Case(role, action, scope, loc)
    for role in ROLES
    for action in ACTIONS
    for scope in SCOPES
    for loc in LOCATIONS
]


# ---------------------------------------------------------------------------------------------
# The world the matrix runs in: built once per module and backend.
# ---------------------------------------------------------------------------------------------


@dataclass
class Matrix:
    mw: ModuleWorld
    callers: dict[str, Api]
    # host images known to be exactly as freshly made, by (scope, location, protected): a case
    # that leaves its image untouched (a refusal, a read) hands it back for the next case.
    spare: dict[tuple[str, str, bool], list[dict[str, Any]]] = field(default_factory=dict)

    def share_body(self, choice: str, loc: str) -> dict[str, Any]:
        """The API body of one of F4's five choices (three-level on) for an image at ``loc``."""
        if choice == "none":
            return {"scope": "none"}
        if choice == "project_partial":
            return {"scope": "project", "project_ids": [self.mw.pid(PROJECT_TARGET[loc])]}
        if choice == "domain_whole":
            return {"scope": "domain"}
        if choice == "domain_partial":
            return {"scope": "domain", "domain_ids": [self.mw.did(DOMAIN_TARGET[loc])]}
        if choice == "system":
            return {"scope": "system"}
        raise AssertionError(choice)

    def image(self, scope: str, loc: str, protected: bool) -> dict[str, Any]:
        """A host image owned at ``loc``, shared at ``scope``, in its freshly made state."""
        spare = self.spare.setdefault((scope, loc, protected), [])
        if spare:
            return spare.pop()
        hi = self.mw.compose(OWNER[loc], protected=protected)
        if scope != "none":
            hi = self.mw.share(hi["id"], self.share_body(scope, loc))
        return hi

    def unchanged(self, scope: str, loc: str, before: dict[str, Any]) -> None:
        """Assert the image is exactly as before the case, then keep it for another case."""
        after = self.mw.admin.get(f"/host-images/{before['id']}").json()
        assert after == before, "the host image changed"
        self.spare.setdefault((scope, loc, before["protected"]), []).append(before)


@pytest.fixture(scope="module")
def matrix(
    database: tuple[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    with module_world(database, tmp_path_factory.mktemp("rbac-data")) as mw:
        callers: dict[str, Api] = {}
        for role, target in (
            ("sysadmin", None),
            ("domainadmin", "D1"),
            ("member", "p1a"),
            ("viewer", "p1a"),
        ):
            name = f"rbac-{role}"
            mw.add_user(name, role, target, "D1")
            callers[role] = mw.login(name, "p1a", "D1")
        yield Matrix(mw, callers)


def _act(m: Matrix, api: Api, case: Case, hid: str) -> Any:
    path = f"/host-images/{hid}"
    if case.action == "get":
        return api.get(path)
    if case.action == "update":
        return api.patch(path, {"description": "changed by the matrix"})
    if case.action == "unshare":
        return api.post(f"{path}/share", m.share_body("none", case.loc))
    if case.action.startswith("share:"):
        return api.post(f"{path}/share", m.share_body(case.action.split(":", 1)[1], case.loc))
    if case.action.startswith("change_project:"):
        target = MOVE_TARGET[(case.loc, case.action.split(":", 1)[1])]
        return api.post(f"{path}/change-project", {"project_id": m.mw.pid(target)})
    if case.action == "set_protection":
        return api.post(f"{path}/protection", {"protected": False})
    if case.action == "delete":
        return api.delete(path)
    raise AssertionError(case.action)


def _check_effect(m: Matrix, case: Case, before: dict[str, Any], body: dict[str, Any]) -> None:
    """What an accepted action must have done."""
    if case.action == "get":
        assert body == before
        # whoever sees the host image reads its sub-images, format copies and log (F8–F10)
        api = m.callers[case.role]
        for tab in ("sub-images", "formats", "logs"):
            r = api.get(f"/host-images/{before['id']}/{tab}")
            assert r.status_code == 200, (tab, r.text)
        m.unchanged(case.scope, case.loc, before)
        return
    after = m.mw.admin.get(f"/host-images/{before['id']}").json()
    if case.action == "update":
        assert body["description"] == after["description"] == "changed by the matrix"
    elif case.action == "unshare" or case.action.startswith("share:"):
        choice = "none" if case.action == "unshare" else case.action.split(":", 1)[1]
        wanted = m.share_body(choice, case.loc)
        assert body["share_scope"] == after["share_scope"] == wanted["scope"]
        assert body["shared_project_ids"] == wanted.get("project_ids", [])
        assert body["shared_domain_ids"] == wanted.get("domain_ids", [])
    elif case.action.startswith("change_project:"):
        target = m.mw.pid(MOVE_TARGET[(case.loc, case.action.split(":", 1)[1])])
        assert body["project_id"] == after["project_id"] == target
        assert {s["project_id"] for s in after["sub_images"]} == {target}
    elif case.action == "set_protection":
        assert body["protected"] is False and after["protected"] is False
    elif case.action == "delete":
        assert body["host_image_id"] == before["id"] and body["task_id"]
        assert after["status"] == "deleting"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rbac_matrix(matrix: Matrix, case: Case) -> None:
    before = matrix.image(case.scope, case.loc, protected=case.action != "delete")
    assert before["share_scope"] == matrix.share_body(case.scope, case.loc)["scope"]
    r = _act(matrix, matrix.callers[case.role], case, before["id"])
    assert r.status_code == case.status, f"{case}: got {r.status_code} {r.text}"
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
        if r.status_code == 404 and case.action == "get":
            for tab in ("sub-images", "formats", "logs"):
                got = matrix.callers[case.role].get(f"/host-images/{before['id']}/{tab}")
                assert got.status_code == 404, (tab, got.text)
        # a refused request changes nothing
        matrix.unchanged(case.scope, case.loc, before)
    else:
        _check_effect(matrix, case, before, r.json())


# ---------------------------------------------------------------------------------------------
# The same table through the batch endpoint (F12): one request per role, action and owner
# location over the five share scopes; every item answers what the single request would.
# ---------------------------------------------------------------------------------------------


def _batch_body(m: Matrix, action: str, loc: str, ids: list[str]) -> dict[str, Any]:
    if action == "update":
        return {"action": "update", "ids": ids, "params": {"description": "batch edit"}}
    if action == "unshare" or action.startswith("share:"):
        choice = "none" if action == "unshare" else action.split(":", 1)[1]
        return {"action": "share", "ids": ids, "params": m.share_body(choice, loc)}
    if action.startswith("change_project:"):
        target = m.mw.pid(MOVE_TARGET[(loc, action.split(":", 1)[1])])
        return {"action": "change_project", "ids": ids, "params": {"project_id": target}}
    if action == "set_protection":
        return {"action": "set_protection", "ids": ids, "params": {"protected": False}}
    if action == "delete":
        return {"action": "delete", "ids": ids, "params": {}}
    raise AssertionError(action)


@pytest.mark.parametrize(
    ("role", "action", "loc"),
    [(r, a, loc) for r in ROLES for a in ACTIONS if a != "get" for loc in LOCATIONS],
)
def test_rbac_matrix_batch(matrix: Matrix, role: str, action: str, loc: str) -> None:
    images = {s: matrix.image(s, loc, protected=action != "delete") for s in SCOPES}
    ids = [images[s]["id"] for s in SCOPES]
    r = matrix.callers[role].post("/host-images/batch", _batch_body(matrix, action, loc, ids))
    assert r.status_code == 200, r.text
    results = {res["id"]: res for res in r.json()["results"]}
    assert sorted(results) == sorted(ids)
    got = {s: results[images[s]["id"]]["status"] for s in SCOPES}
    want = {s: expected(role, action, s, loc) for s in SCOPES}
    assert got == want
    for s in SCOPES:
        res = results[images[s]["id"]]
        assert res["ok"] is (want[s] < 400), res
        assert (res["error"] is None) is res["ok"], res
        if action == "delete" and res["ok"]:
            assert res["task_id"], res
        if not res["ok"]:
            # a refused item changes nothing
            matrix.unchanged(s, loc, images[s])
