"""The role → action rules (SPEC §2, F5–F7) as pure functions, without a database.

The expectation tables below are written from the spec's words, not from the code:

* ``sysadmin``: everything, anywhere;
* ``domainadmin``: everything on objects owned by projects of its domain;
* ``member``: read, create, update, protect, delete own-project images, save and convert
  (format copies on demand, docs/api.md); **no** sharing, **no** change-project;
* ``viewer``: read only;
* project roles act only on the token's current project (SPEC §5: a token is scoped to one
  current project; docs/architecture.md "Project roles act only on the token's current
  project").

``allowed`` answers by role only: reading a *shared-in* image is granted by visibility, which
is checked before these rules (and is a database query, tested at the API level).
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hostimage.domain.permissions import (
    Action,
    allowed,
    authorize,
    authorize_change_project,
    may_create_in,
)
from hostimage.domain.sharing import Owner
from hostimage.domain.tenancy import Grant, Principal, Role
from hostimage.errors import Forbidden
from tests.domain.tenants import (
    PROJECTS,
    domainadmin,
    grant_lists_st,
    grants_st,
    member,
    owned_by,
    owners_st,
    principal,
    principals_st,
    sysadmin,
    viewer,
)

A = Action
EVERYTHING = frozenset(
    {
        A.READ,
        A.CREATE,
        A.UPDATE,
        A.SET_PROTECTION,
        A.DELETE,
        A.CHANGE_PROJECT,
        A.SAVE,
        A.CONVERT,
    }
)
MEMBER = frozenset({A.READ, A.CREATE, A.UPDATE, A.SET_PROTECTION, A.DELETE, A.SAVE, A.CONVERT})
VIEWER = frozenset({A.READ})
NOTHING: frozenset[Action] = frozenset()

# name → the caller (grants, current project of its token)
CALLERS: dict[str, Principal] = {
    "sysadmin": principal(sysadmin(), project="p1a"),
    "domainadmin_D1": principal(domainadmin("D1"), project="p1a"),
    "domainadmin_D2": principal(domainadmin("D2"), project="p2b"),
    "member_p1a": principal(member("p1a"), project="p1a"),
    "viewer_p1a": principal(viewer("p1a"), project="p1a"),
    "member_and_viewer_p1a": principal(viewer("p1a"), member("p1a"), project="p1a"),
    "member_p1a_viewer_p1b": principal(member("p1a"), viewer("p1b"), project="p1a"),
    "viewer_p1a_member_p1b": principal(viewer("p1a"), member("p1b"), project="p1a"),
    "no_role": principal(project="p1a"),
    "domainadmin_D2_member_p1a": principal(domainadmin("D2"), member("p1a"), project="p1a"),
}

OWNERS = ("p1a", "p1b", "p2a")
"""Where the object lives: D1's p1a and p1b, D2's p2a."""

EXPECTED: dict[str, dict[str, frozenset[Action]]] = {
    "sysadmin": {"p1a": EVERYTHING, "p1b": EVERYTHING, "p2a": EVERYTHING},
    "domainadmin_D1": {"p1a": EVERYTHING, "p1b": EVERYTHING, "p2a": NOTHING},
    "domainadmin_D2": {"p1a": NOTHING, "p1b": NOTHING, "p2a": EVERYTHING},
    "member_p1a": {"p1a": MEMBER, "p1b": NOTHING, "p2a": NOTHING},
    "viewer_p1a": {"p1a": VIEWER, "p1b": NOTHING, "p2a": NOTHING},
    # the stronger of two roles on the same project counts
    "member_and_viewer_p1a": {"p1a": MEMBER, "p1b": NOTHING, "p2a": NOTHING},
    # a role on a project that is not the token's current one does nothing yet
    "member_p1a_viewer_p1b": {"p1a": MEMBER, "p1b": NOTHING, "p2a": NOTHING},
    "viewer_p1a_member_p1b": {"p1a": VIEWER, "p1b": NOTHING, "p2a": NOTHING},
    # a token whose role was revoked
    "no_role": {"p1a": NOTHING, "p1b": NOTHING, "p2a": NOTHING},
    "domainadmin_D2_member_p1a": {"p1a": MEMBER, "p1b": NOTHING, "p2a": EVERYTHING},
}


def test_the_table_covers_every_action() -> None:
    assert frozenset(Action) == EVERYTHING


@pytest.mark.parametrize("owner", OWNERS)
@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("caller", list(CALLERS))
def test_allowed_matrix(caller: str, action: Action, owner: str) -> None:
    want = action in EXPECTED[caller][owner]
    p = CALLERS[caller]
    assert allowed(p, action, owned_by(owner)) is want
    if want:
        authorize(p, action, owned_by(owner))
    else:
        with pytest.raises(Forbidden) as exc:
            authorize(p, action, owned_by(owner))
        assert exc.value.status == 403
        assert exc.value.code == "forbidden"
        assert action.value in exc.value.detail


@pytest.mark.parametrize("owner", OWNERS)
@pytest.mark.parametrize("caller", list(CALLERS))
def test_may_create_in(caller: str, owner: str) -> None:
    assert may_create_in(CALLERS[caller], owned_by(owner)) is (A.CREATE in EXPECTED[caller][owner])


# SPEC F5: sysadmin anywhere; domainadmin within its domain; nobody else.
MOVES = {
    "within_D1": ("p1a", "p1b"),
    "within_D2": ("p2a", "p2b"),
    "D1_to_D2": ("p1a", "p2a"),
    "D2_to_D1": ("p2a", "p1a"),
}
MAY_MOVE: dict[str, frozenset[str]] = {
    "sysadmin": frozenset(MOVES),
    "domainadmin_D1": frozenset({"within_D1"}),
    "domainadmin_D2": frozenset({"within_D2"}),
    "domainadmin_D1_D2": frozenset({"within_D1", "within_D2"}),
    "domainadmin_D2_member_p1a": frozenset({"within_D2"}),
    "member_p1a": frozenset(),
    "viewer_p1a": frozenset(),
    "no_role": frozenset(),
}
MOVERS: dict[str, Principal] = {
    **{name: CALLERS[name] for name in MAY_MOVE if name in CALLERS},
    "domainadmin_D1_D2": principal(domainadmin("D1"), domainadmin("D2"), project="p1a"),
}


def _move_cases() -> list[object]:
    # SPEC F5: a domainadmin changes the project only *within* its domain, even one who
    # administers two domains.
    return [
        pytest.param(caller, move, id=f"{caller}-{move}") for caller in MAY_MOVE for move in MOVES
    ]


@pytest.mark.parametrize(("caller", "move"), _move_cases())
def test_authorize_change_project(caller: str, move: str) -> None:
    source, target = MOVES[move]
    p = MOVERS[caller]
    if move in MAY_MOVE[caller]:
        authorize_change_project(p, owned_by(source), owned_by(target))
    else:
        with pytest.raises(Forbidden) as exc:
            authorize_change_project(p, owned_by(source), owned_by(target))
        assert exc.value.status == 403


# --- properties over any caller and any owner ---------------------------------------------


@given(principals_st(), st.sampled_from(list(Action)), owners_st)
def test_sysadmin_may_do_everything(p: Principal, action: Action, owner: Owner) -> None:
    admin = principal(*p.grants, sysadmin(), project=p.project_id)
    assert allowed(admin, action, owner)
    authorize_change_project(admin, owner, owned_by("p2b"))


@given(
    st.lists(st.sampled_from(PROJECTS).map(viewer), max_size=4),
    st.sampled_from(PROJECTS),
    owners_st,
)
def test_viewer_roles_only_ever_read(grants: list[Grant], project: str, owner: Owner) -> None:
    p = principal(*grants, project=project)
    rights = {a for a in Action if allowed(p, a, owner)}
    assert rights <= {A.READ}
    # and only on the current project, when a viewer role covers it
    assert (A.READ in rights) is (owner.project_id == project and viewer(project) in p.grants)


@given(principals_st(), owners_st)
def test_without_an_admin_role_only_the_current_project_is_reached(
    p: Principal, owner: Owner
) -> None:
    assume(not any(g.role in (Role.SYSADMIN, Role.DOMAINADMIN) for g in p.grants))
    rights = {a for a in Action if allowed(p, a, owner)}
    assert A.CHANGE_PROJECT not in rights
    if owner.project_id != p.project_id:
        assert rights == set()
    with pytest.raises(Forbidden):
        authorize_change_project(p, owner, owned_by("p1b"))


@given(principals_st(), grants_st, st.sampled_from(list(Action)), owners_st)
def test_another_role_never_takes_a_right_away(
    p: Principal, extra: Grant, action: Action, owner: Owner
) -> None:
    more = principal(*p.grants, extra, project=p.project_id)
    if allowed(p, action, owner):
        assert allowed(more, action, owner)


@given(grant_lists_st, st.sampled_from(list(Action)), owners_st)
def test_the_same_grants_in_any_order_give_the_same_answer(
    grants: list[Grant], action: Action, owner: Owner
) -> None:
    forward = principal(*grants, project="p1a")
    backward = principal(*reversed(grants), project="p1a")
    assert allowed(forward, action, owner) is allowed(backward, action, owner)
