"""Property tests for visibility (SPEC §2, F4).

A fixed small world: one host image in each of p0a, p1a, p1b, p2a, p2b and five observers,
each logged in on one current project. Hypothesis picks share states (the five F4 choices
with their target lists) and role grants; we look at what each observer sees through
``GET /host-images?scope=project|domain|system`` (every page) and ``GET /host-images/{id}``.

* granting a share (a state whose audience contains the old one's) or a role never hides
  anything an observer could see;
* revoking it never reveals anything, and restores exactly the old picture;
* what is seen is exactly what the spec's views say.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tests.api.conftest import Api
from tests.api.helpers_rbac import PROJECT_DOMAINS, ModuleWorld, list_all, module_world

IMAGE_PROJECTS = ("p0a", "p1a", "p1b", "p2a", "p2b")
DOMAINS = ("Default", "D1", "D2")
PROJECT_DOMAIN = {**PROJECT_DOMAINS, "system": "Default"}
VIEWS = ("project", "domain", "system")

# observer name → (role, role target, current project). Domain admins work in a project of
# their own domain (the domain view then shows that domain).
OBSERVERS: dict[str, tuple[str, str, str]] = {
    "mem-p1a": ("member", "p1a", "p1a"),
    "view-p1b": ("viewer", "p1b", "p1b"),
    "view-p0a": ("viewer", "p0a", "p0a"),
    "da-D1": ("domainadmin", "D1", "p1a"),
    "da-D2": ("domainadmin", "D2", "p2b"),
}


def props_settings(examples: int) -> settings:
    """Modest example counts: every example takes dozens of real API requests."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# ---------------------------------------------------------------------------------------------
# Share states and the spec's model of who sees what.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """A normalized share state (owner's own project / domain dropped, empty project list
    means none), as F4 defines it; ``asked`` keeps the request it came from."""

    scope: str
    projects: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    asked: tuple[str, frozenset[str]] | None = field(default=None, compare=False)

    @staticmethod
    def of(owner: str, scope: str, targets: frozenset[str]) -> Share:
        asked = (scope, targets)
        if scope == "project":
            kept = targets - {owner}
            if not kept:
                return Share("none", asked=asked)
            return Share("project", projects=kept, asked=asked)
        if scope == "domain":
            return Share("domain", domains=targets - {PROJECT_DOMAIN[owner]}, asked=asked)
        return Share(scope)

    def body(self, mw: ModuleWorld) -> dict[str, Any]:
        """The API body as asked (targets may name the owner's own project or domain)."""
        scope, targets = self.asked or (self.scope, self.projects | self.domains)
        out: dict[str, Any] = {"scope": scope}
        if scope == "project":
            out["project_ids"] = sorted(mw.pid(p) for p in targets)
        elif scope == "domain" and targets:
            out["domain_ids"] = sorted(mw.did(d) for d in targets)
        return out

    def audience(self, owner: str) -> frozenset[str]:
        """The projects F4's table says may see the image."""
        everyone = frozenset(PROJECT_DOMAIN)
        if self.scope == "system":
            return everyone
        if self.scope == "domain":
            domains = self.domains | {PROJECT_DOMAIN[owner]}
            return frozenset(p for p in everyone if PROJECT_DOMAIN[p] in domains)
        return frozenset({owner}) | self.projects


@st.composite
def shares(draw: st.DrawFn, owner: str) -> Share:
    """Any of the five F4 choices for an image owned by ``owner``, targets included."""
    scope = draw(st.sampled_from(["none", "project", "domain", "system"]))
    if scope == "project":
        same = sorted(p for p, d in PROJECT_DOMAIN.items() if d == PROJECT_DOMAIN[owner])
        return Share.of(owner, scope, frozenset(draw(st.sets(st.sampled_from(same)))))
    if scope == "domain":
        return Share.of(owner, scope, frozenset(draw(st.sets(st.sampled_from(DOMAINS)))))
    return Share(scope)


def states() -> st.SearchStrategy[dict[str, Share]]:
    return st.fixed_dictionaries({owner: shares(owner) for owner in IMAGE_PROJECTS})


@dataclass(frozen=True)
class Grants:
    """An observer's roles as (role, target) pairs, and its token's current project."""

    roles: frozenset[tuple[str, str]]
    current: str

    def admin_domains(self) -> frozenset[str]:
        return frozenset(t for r, t in self.roles if r == "domainadmin")

    def is_sysadmin(self) -> bool:
        return any(r == "sysadmin" for r, _ in self.roles)

    def covers_current(self) -> bool:
        """A role reaches the current project (SPEC §5: the token's project needs one)."""
        return (
            self.is_sysadmin()
            or PROJECT_DOMAIN[self.current] in self.admin_domains()
            or any(t == self.current for r, t in self.roles if r in ("member", "viewer"))
        )


def in_project_view(owner: str, share: Share, project: str) -> bool:
    """SPEC §2 project view: owned by the project; system-shared; domain-shared (whole) in its
    domain; shared to it; shared to its domain."""
    domain = PROJECT_DOMAIN[project]
    return (
        owner == project
        or share.scope == "system"
        or (
            share.scope == "domain" and (PROJECT_DOMAIN[owner] == domain or domain in share.domains)
        )
        or (share.scope == "project" and project in share.projects)
    )


def in_domain_view(owner: str, share: Share, domain: str) -> bool:
    """SPEC §2 domain view: owned by projects of the domain; system-shared; shared to it."""
    return (
        PROJECT_DOMAIN[owner] == domain
        or share.scope == "system"
        or (share.scope == "domain" and domain in share.domains)
    )


def model(grants: Grants, state: dict[str, Share]) -> dict[str, frozenset[str] | None]:
    """Owner projects of the images each view lists (None: view refused) and ``get``:
    those the caller may see at all (the union of every view its roles give)."""
    out: dict[str, frozenset[str] | None] = {}
    project = (
        frozenset(o for o, s in state.items() if in_project_view(o, s, grants.current))
        if grants.covers_current()
        else frozenset()
    )
    out["project"] = project
    admin = grants.admin_domains()
    if grants.is_sysadmin() or admin:
        own = PROJECT_DOMAIN[grants.current]
        (domain,) = [own] if own in admin or grants.is_sysadmin() else sorted(admin)
        out["domain"] = frozenset(o for o, s in state.items() if in_domain_view(o, s, domain))
    else:
        out["domain"] = None
    out["system"] = frozenset(state) if grants.is_sysadmin() else None
    if grants.is_sysadmin():
        out["get"] = frozenset(state)
    else:
        by_domains = frozenset(
            o for o, s in state.items() for d in admin if in_domain_view(o, s, d)
        )
        out["get"] = project | by_domains
    return out


# ---------------------------------------------------------------------------------------------
# The world and how an observer's picture is taken.
# ---------------------------------------------------------------------------------------------


@dataclass
class Props:
    mw: ModuleWorld
    images: dict[str, dict[str, Any]]  # owner project → host image
    observers: dict[str, Api]
    user_ids: dict[str, str]
    current: dict[str, Share] = field(default_factory=dict)

    def owner_of(self, host_image_id: str) -> str:
        return next(o for o, hi in self.images.items() if hi["id"] == host_image_id)

    def set_state(self, state: dict[str, Share]) -> None:
        for owner, share in state.items():
            if self.current.get(owner) != share:
                got = self.mw.share(self.images[owner]["id"], share.body(self.mw))
                assert got["share_scope"] == share.scope, got
                assert got["shared_project_ids"] == sorted(self.mw.pid(p) for p in share.projects)
                assert got["shared_domain_ids"] == sorted(self.mw.did(d) for d in share.domains)
                self.current[owner] = share

    def picture(
        self, name: str, owners: tuple[str, ...] = IMAGE_PROJECTS, subs: bool = False
    ) -> dict[str, frozenset[str] | None]:
        """What observer ``name`` sees: owners listed per view (None: 403) and, among
        ``owners``' images, those ``GET /host-images/{id}`` answers (and their sub-images)."""
        api = self.observers[name]
        out: dict[str, frozenset[str] | None] = {}
        for view in VIEWS:
            status, ids = list_all(api, view, page=4)
            assert status in (200, 403), (view, status)
            assert len(ids) == len(set(ids)), f"duplicates across pages: {ids}"
            out[view] = frozenset(self.owner_of(i) for i in ids) if status == 200 else None
        seen = set()
        for owner in owners:
            hi = self.images[owner]
            r = api.get(f"/host-images/{hi['id']}")
            assert r.status_code in (200, 404), r.text
            if r.status_code == 200:
                seen.add(owner)
            if subs:
                # sharing a host image shares its sub-images (F4)
                sub = api.get(f"/images/{hi['sub_images'][1]['id']}")
                assert sub.status_code == r.status_code, (owner, sub.status_code, r.status_code)
        out["get"] = frozenset(seen)
        return out


def _seen(picture: dict[str, frozenset[str] | None]) -> dict[str, frozenset[str]]:
    """A picture with refused views read as "sees nothing"."""
    return {k: v or frozenset() for k, v in picture.items()}


def assert_no_loss(before: dict[str, Any], after: dict[str, Any], what: str) -> None:
    b, a = _seen(before), _seen(after)
    for key in b:
        lost = b[key] - a[key]
        assert not lost, f"{what}: {key} lost the images of {sorted(lost)}"


@pytest.fixture(scope="module")
def props(
    database: tuple[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Props]:
    with module_world(database, tmp_path_factory.mktemp("props-data")) as mw:
        images = {p: mw.compose(p, name=f"vis-{p}") for p in IMAGE_PROJECTS}
        observers: dict[str, Api] = {}
        user_ids: dict[str, str] = {}
        for name, (role, target, current) in OBSERVERS.items():
            domain = PROJECT_DOMAIN[current]
            user_ids[name] = mw.add_user(name, role, target, domain)
            observers[name] = mw.login(name, current, domain)
        yield Props(mw, images, observers, user_ids, {p: Share("none") for p in IMAGE_PROJECTS})


def base_grants(name: str) -> Grants:
    role, target, current = OBSERVERS[name]
    return Grants(frozenset({(role, target)}), current)


# ---------------------------------------------------------------------------------------------
# Properties.
# ---------------------------------------------------------------------------------------------


@props_settings(10)
@given(state=states())
def test_what_is_seen_is_what_the_views_say(props: Props, state: dict[str, Share]) -> None:
    props.set_state(state)
    for name in OBSERVERS:
        want = model(base_grants(name), state)
        got = props.picture(name)
        assert got == want, f"{name} in {state}"


@props_settings(8)
@given(state=states(), owner=st.sampled_from(IMAGE_PROJECTS), data=st.data())
def test_granting_a_share_hides_nothing_and_revoking_reveals_nothing(
    props: Props, state: dict[str, Share], owner: str, data: st.DataObject
) -> None:
    a = data.draw(shares(owner), label="narrow")
    b = data.draw(shares(owner), label="wide")
    if not a.audience(owner) <= b.audience(owner):
        a, b = b, a
    assume(a.audience(owner) <= b.audience(owner))
    props.set_state({**state, owner: a})
    # the other images' GET answers are the model test's business; here only ``owner`` changes
    narrow = {name: props.picture(name, (owner,), subs=True) for name in OBSERVERS}
    props.set_state({owner: b})
    wide = {name: props.picture(name, (owner,), subs=True) for name in OBSERVERS}
    for name in OBSERVERS:
        assert_no_loss(narrow[name], wide[name], f"{name}: share {a} → {b} on {owner}")
    props.set_state({owner: a})
    for name in OBSERVERS:
        again = props.picture(name, (owner,), subs=True)
        assert_no_loss(again, wide[name], f"{name}: revoke {b} → {a} on {owner}")
        assert again == narrow[name], f"{name}: revoking {b} → {a} did not restore"


ROLE_TARGETS = (
    [("sysadmin", "")]
    + [("domainadmin", d) for d in DOMAINS]
    + [(r, p) for r in ("member", "viewer") for p in PROJECT_DOMAINS]
)


@props_settings(12)
@given(
    state=states(),
    name=st.sampled_from(sorted(OBSERVERS)),
    grant=st.sampled_from(ROLE_TARGETS),
)
def test_granting_a_role_hides_nothing_and_revoking_reveals_nothing(
    props: Props, state: dict[str, Share], name: str, grant: tuple[str, str]
) -> None:
    base = base_grants(name)
    assume(grant not in base.roles)
    props.set_state(state)
    before = props.picture(name)
    assert before == model(base, state)
    role, target = grant
    rid = props.mw.grant(props.user_ids[name], role, target or None)
    try:
        granted = props.picture(name)
        assert_no_loss(before, granted, f"{name} granted {grant}")
        assert granted == model(Grants(base.roles | {grant}, base.current), state)
    finally:
        assert props.mw.admin.delete(f"/role-assignments/{rid}").status_code == 204
    after = props.picture(name)
    assert_no_loss(after, granted, f"{name} revoked {grant}")
    assert after == before


def test_revoking_the_current_projects_role_hides_its_images(props: Props) -> None:
    """SPEC §2/§5: a member sees its project's images through its role; once the role is
    revoked, its existing token sees neither the project's unshared images nor their log."""
    props.set_state({p: Share("none") for p in IMAGE_PROJECTS})
    mw = props.mw
    uid = mw.add_user("revokee", "member", "p0a", "Default")
    api = mw.login("revokee", "p0a", "Default")
    hid = props.images["p0a"]["id"]
    assert api.get(f"/host-images/{hid}").status_code == 200
    rid = next(
        ra["id"]
        for ra in mw.admin.get("/role-assignments", params={"user_id": uid}).json()["items"]
        if ra["user_id"] == uid
    )
    assert mw.admin.delete(f"/role-assignments/{rid}").status_code == 204
    assert api.get(f"/host-images/{hid}").status_code == 404
    status, ids = list_all(api, "project")
    assert hid not in ids, status
    assert api.get(f"/host-images/{hid}/logs").status_code == 404
    logs = api.get("/logs", params={"obj_id": hid})
    assert logs.status_code == 200 and logs.json()["items"] == []
