"""Share scopes and who may set them (SPEC F4, §2 three-level permissions), without a database.

The five console choices and their API bodies (F4):

| console choice | three-level on | three-level off |
|---|---|---|
| 不共享 | ``none`` | ``none`` |
| 项目共享-部分 | ``project`` + project ids | same |
| 项目共享-全部 | ``domain`` (no ids) | ``system`` |
| 域共享-部分 | ``domain`` + domain ids | refused (400) |
| 域共享-全部 | ``system`` | ``system`` |

Who (F4): project sharing needs the domainadmin of the owner's domain or a sysadmin; the
whole own domain is domainadmin business too; domain-partial and system need a sysadmin. The
caller must also be allowed the image's *current* scope, so nobody undoes a share above their
level. A member or viewer never shares (§2). Not sharing is the choice of whoever may share.

Whether target projects lie in the owner's domain (400 ``project_in_other_domain``) and
whether target ids exist is a database question: ``services/host_images/share.py`` checks it
and the API tests cover it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostimage.domain.sharing import (
    Level,
    Owner,
    ShareScope,
    ShareState,
    authorize_share,
    normalize_request,
    required_level,
    share_action,
    validate_share,
)
from hostimage.domain.tenancy import Principal
from hostimage.errors import Forbidden, Invalid
from tests.domain.tenants import (
    DOMAINS,
    PROJECTS,
    domainadmin,
    member,
    owned_by,
    owners_st,
    principal,
    principals_st,
    sysadmin,
    viewer,
)

OWNER = owned_by("p1a")  # D1

# The states an image of p1a can be in, one per console choice with three-level on.
STATES = {
    "none": ShareState(ShareScope.NONE),
    "project_partial": ShareState(ShareScope.PROJECT, project_ids=frozenset({"p1b"})),
    "project_whole": ShareState(ShareScope.DOMAIN),
    "domain_partial": ShareState(ShareScope.DOMAIN, domain_ids=frozenset({"D2"})),
    "domain_whole": ShareState(ShareScope.SYSTEM),
}

# F4 "Who": the level each choice needs, to set it and to change away from it.
LEVEL = {
    "none": "domainadmin",
    "project_partial": "domainadmin",
    "project_whole": "domainadmin",
    "domain_partial": "sysadmin",
    "domain_whole": "sysadmin",
}

CALLERS: dict[str, Principal] = {
    "sysadmin": principal(sysadmin(), project="p1a"),
    "domainadmin_of_owner_domain": principal(domainadmin("D1"), project="p1a"),
    "domainadmin_of_other_domain": principal(domainadmin("D2"), project="p2a"),
    "member_of_owner_project": principal(member("p1a"), project="p1a"),
    "viewer_of_owner_project": principal(viewer("p1a"), project="p1a"),
    "member_of_other_project": principal(member("p1b"), project="p1b"),
    "no_role": principal(project="p1a"),
}
REACHES: dict[str, frozenset[str]] = {
    "sysadmin": frozenset({"domainadmin", "sysadmin"}),
    "domainadmin_of_owner_domain": frozenset({"domainadmin"}),
    "domainadmin_of_other_domain": frozenset(),
    "member_of_owner_project": frozenset(),
    "viewer_of_owner_project": frozenset(),
    "member_of_other_project": frozenset(),
    "no_role": frozenset(),
}


@pytest.mark.parametrize("wanted", list(STATES))
@pytest.mark.parametrize("current", list(STATES))
@pytest.mark.parametrize("caller", list(CALLERS))
def test_who_may_share(caller: str, current: str, wanted: str) -> None:
    ok = {LEVEL[current], LEVEL[wanted]} <= REACHES[caller]
    if ok:
        authorize_share(CALLERS[caller], OWNER, STATES[current], STATES[wanted])
    else:
        with pytest.raises(Forbidden) as exc:
            authorize_share(CALLERS[caller], OWNER, STATES[current], STATES[wanted])
        assert exc.value.status == 403
        assert exc.value.code == "share_forbidden"


def test_a_domainadmin_cannot_undo_a_share_above_its_level() -> None:
    admin = CALLERS["domainadmin_of_owner_domain"]
    for above in ("domain_partial", "domain_whole"):
        for wanted in ("none", "project_partial", "project_whole"):
            with pytest.raises(Forbidden):
                authorize_share(admin, OWNER, STATES[above], STATES[wanted])


@pytest.mark.parametrize("state", list(STATES))
def test_required_level(state: str) -> None:
    want = Level.SYSTEM if LEVEL[state] == "sysadmin" else Level.DOMAIN
    assert required_level(STATES[state]) is want


# --- the console choices → API bodies → the state asked for, with three-level on and off ------


def console_body(choice: str, three_level: bool) -> dict[str, Any]:
    """The API body F4 gives each console choice for an image of p1a."""
    if choice == "none":
        return {"scope": ShareScope.NONE}
    if choice == "project_partial":
        return {"scope": ShareScope.PROJECT, "project_ids": ["p1b"]}
    if choice == "project_whole":
        return {"scope": ShareScope.DOMAIN if three_level else ShareScope.SYSTEM}
    if choice == "domain_partial":
        return {"scope": ShareScope.DOMAIN, "domain_ids": ["D2"]}
    if choice == "domain_whole":
        return {"scope": ShareScope.SYSTEM}
    raise AssertionError(choice)


def ask(owner: Owner, body: dict[str, Any]) -> ShareState:
    """The state an API share body asks for (the scope parsed as the service does)."""
    return normalize_request(
        owner, ShareScope(body["scope"]), body.get("project_ids"), body.get("domain_ids")
    )


@pytest.mark.parametrize("choice", list(STATES))
def test_three_level_on_every_choice_is_valid(choice: str) -> None:
    wanted = ask(OWNER, console_body(choice, three_level=True))
    assert wanted == STATES[choice]
    validate_share(wanted, three_level=True)


@pytest.mark.parametrize("choice", ["none", "project_partial", "project_whole", "domain_whole"])
def test_three_level_off_the_offered_choices_are_valid(choice: str) -> None:
    wanted = ask(OWNER, console_body(choice, three_level=False))
    validate_share(wanted, three_level=False)
    if choice == "project_whole":
        # off: "project share — all" is sharing with everyone, so it needs a sysadmin
        assert wanted == ShareState(ShareScope.SYSTEM)
        with pytest.raises(Forbidden):
            authorize_share(CALLERS["domainadmin_of_owner_domain"], OWNER, STATES["none"], wanted)
        authorize_share(CALLERS["sysadmin"], OWNER, STATES["none"], wanted)
    else:
        assert wanted == STATES[choice]


@pytest.mark.parametrize(
    "body",
    [
        {"scope": ShareScope.DOMAIN},
        {"scope": ShareScope.DOMAIN, "domain_ids": ["D2"]},
        {"scope": ShareScope.DOMAIN, "domain_ids": ["D1"]},
    ],
    ids=["whole", "partial", "own-domain-only"],
)
def test_three_level_off_domain_sharing_is_refused_with_400(body: dict[str, Any]) -> None:
    wanted = ask(OWNER, body)
    with pytest.raises(Invalid) as exc:
        validate_share(wanted, three_level=False)
    assert exc.value.status == 400
    assert exc.value.code == "three_level_disabled"


@given(st.sampled_from(list(STATES.values())), st.booleans())
def test_only_domain_scope_depends_on_three_level(state: ShareState, three_level: bool) -> None:
    if state.scope is ShareScope.DOMAIN and not three_level:
        with pytest.raises(Invalid):
            validate_share(state, three_level)
    else:
        validate_share(state, three_level)


# --- normalizing a request -----------------------------------------------------------------


def test_the_owner_project_is_dropped_and_an_empty_list_means_none() -> None:
    assert ask(OWNER, {"scope": "project", "project_ids": ["p1a", "p1b"]}) == ShareState(
        ShareScope.PROJECT, project_ids=frozenset({"p1b"})
    )
    for ids in (["p1a"], ["p1a", "p1a"], [], None):
        assert ask(OWNER, {"scope": "project", "project_ids": ids}) == STATES["none"], ids


def test_duplicate_targets_collapse() -> None:
    got = ask(OWNER, {"scope": "project", "project_ids": ["p1b", "p1b"]})
    assert got.project_ids == frozenset({"p1b"})
    got = ask(OWNER, {"scope": "domain", "domain_ids": ["D2", "D2"]})
    assert got.domain_ids == frozenset({"D2"})


def test_the_owner_domain_is_dropped_from_a_domain_share() -> None:
    assert ask(OWNER, {"scope": "domain", "domain_ids": ["D1", "D2"]}) == STATES["domain_partial"]
    # listing only its own domain is the whole own domain: a domainadmin may do that
    own = ask(OWNER, {"scope": "domain", "domain_ids": ["D1"]})
    assert own == STATES["project_whole"]
    authorize_share(CALLERS["domainadmin_of_owner_domain"], OWNER, STATES["none"], own)
    assert ask(OWNER, {"scope": "domain", "domain_ids": []}) == STATES["project_whole"]


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "project", "project_ids": ["p1b"], "domain_ids": ["D2"]},
        {"scope": "project", "domain_ids": ["D2"]},
        {"scope": "domain", "project_ids": ["p1b"]},
        {"scope": "domain", "domain_ids": ["D2"], "project_ids": ["p1b"]},
        {"scope": "none", "project_ids": ["p1b"]},
        {"scope": "none", "domain_ids": ["D2"]},
        {"scope": "system", "project_ids": ["p1b"]},
        {"scope": "system", "domain_ids": ["D2"]},
    ],
)
def test_ids_that_do_not_fit_the_scope_are_refused_with_400(body: dict[str, Any]) -> None:
    with pytest.raises(Invalid) as exc:
        ask(OWNER, body)
    assert exc.value.status == 400
    assert exc.value.code == "bad_share"


def test_empty_lists_that_do_not_fit_the_scope_are_harmless() -> None:
    assert (
        ask(OWNER, {"scope": ShareScope.NONE, "project_ids": [], "domain_ids": []})
        == (STATES["none"])
    )
    assert (
        ask(OWNER, {"scope": ShareScope.SYSTEM, "project_ids": [], "domain_ids": []})
        == (STATES["domain_whole"])
    )


def test_share_action() -> None:
    assert share_action(STATES["none"]) == "unshare"
    for name in ("project_partial", "project_whole", "domain_partial", "domain_whole"):
        assert share_action(STATES[name]) == "share"
    # a project share whose every target was dropped ends sharing
    assert share_action(ask(OWNER, {"scope": "project", "project_ids": ["p1a"]})) == "unshare"


# --- properties over any request -----------------------------------------------------------

ids_st = st.none() | st.lists(st.sampled_from([*PROJECTS, *DOMAINS, "elsewhere"]), max_size=5)


@st.composite
def requests_st(draw: st.DrawFn) -> tuple[Owner, ShareState]:
    """Any owner and any request the normalizer accepts, with the state it asks for."""
    owner = draw(owners_st)
    scope = draw(st.sampled_from(list(ShareScope)))
    pids = draw(ids_st) if scope is ShareScope.PROJECT else None
    dids = draw(ids_st) if scope is ShareScope.DOMAIN else None
    return owner, normalize_request(owner, scope, pids, dids)


@given(requests_st())
def test_a_share_never_targets_its_owner(req: tuple[Owner, ShareState]) -> None:
    owner, state = req
    assert owner.project_id not in state.project_ids
    assert owner.domain_id not in state.domain_ids
    # targets only where the scope takes them, and a project share always names someone
    if state.scope is not ShareScope.PROJECT:
        assert not state.project_ids
    else:
        assert state.project_ids
    if state.scope is not ShareScope.DOMAIN:
        assert not state.domain_ids
    assert state.is_shared is (state.scope is not ShareScope.NONE)
    assert share_action(state) == ("share" if state.is_shared else "unshare")


@given(requests_st())
def test_normalizing_is_idempotent(req: tuple[Owner, ShareState]) -> None:
    owner, state = req
    again = normalize_request(
        owner,
        state.scope,
        sorted(state.project_ids) if state.scope is ShareScope.PROJECT else None,
        sorted(state.domain_ids) if state.scope is ShareScope.DOMAIN else None,
    )
    assert again == state


@given(requests_st(), requests_st())
def test_a_sysadmin_may_make_any_change(
    a: tuple[Owner, ShareState], b: tuple[Owner, ShareState]
) -> None:
    owner = a[0]
    authorize_share(CALLERS["sysadmin"], owner, a[1], b[1])


@given(principals_st(), requests_st(), requests_st())
def test_going_there_and_back_need_the_same_rights(
    p: Principal, a: tuple[Owner, ShareState], b: tuple[Owner, ShareState]
) -> None:
    owner = a[0]

    def may(current: ShareState, wanted: ShareState) -> bool:
        try:
            authorize_share(p, owner, current, wanted)
        except Forbidden:
            return False
        return True

    assert may(a[1], b[1]) is may(b[1], a[1])
    # and no change is allowed to a caller who may not administer the owner's domain
    if not p.is_domain_admin(owner.domain_id):
        assert not may(a[1], b[1])
