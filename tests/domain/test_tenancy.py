"""Roles, principals and views (SPEC §2), without a database.

* roles and their scopes: sysadmin → system, domainadmin → one domain, member and viewer →
  one project;
* a caller may ask for a view up to its highest role, above it 403 (§2 "Views");
* project roles act on the token's current project only; a revoked role stops working at
  once (docs/architecture.md, "Tenancy and tokens").
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostimage.domain.tenancy import ROLE_SCOPE, Principal, Role, ScopeType, View
from hostimage.errors import Forbidden
from tests.domain.tenants import (
    domainadmin,
    member,
    principal,
    principals_st,
    sysadmin,
    viewer,
)


def test_role_scopes_are_the_spec_table() -> None:
    assert {r.value: s.value for r, s in ROLE_SCOPE.items()} == {
        "sysadmin": "system",
        "domainadmin": "domain",
        "member": "project",
        "viewer": "project",
    }


# (caller, the views it may ask for) — "up to its highest role"
VIEWS = {
    "sysadmin": (principal(sysadmin()), {View.SYSTEM, View.DOMAIN, View.PROJECT}),
    "domainadmin": (principal(domainadmin("D1")), {View.DOMAIN, View.PROJECT}),
    "domainadmin_of_another_domain": (
        principal(domainadmin("D2"), member("p1a")),
        {View.DOMAIN, View.PROJECT},
    ),
    "member": (principal(member("p1a")), {View.PROJECT}),
    "viewer": (principal(viewer("p1a")), {View.PROJECT}),
    "no_role": (principal(), {View.PROJECT}),
}


@pytest.mark.parametrize("view", list(View))
@pytest.mark.parametrize("caller", list(VIEWS))
def test_views_up_to_the_highest_role(caller: str, view: View) -> None:
    p, may = VIEWS[caller]
    if view in may:
        p.check_view(view)
    else:
        with pytest.raises(Forbidden) as exc:
            p.check_view(view)
        assert exc.value.status == 403
        assert exc.value.code == "view_forbidden"


def test_highest_view() -> None:
    assert principal(sysadmin(), member("p1a")).highest_view() is View.SYSTEM
    assert principal(domainadmin("D2"), member("p1a")).highest_view() is View.DOMAIN
    assert principal(member("p1a"), viewer("p1b")).highest_view() is View.PROJECT
    assert principal(project=None).highest_view() is View.PROJECT


RANK = {View.PROJECT: 0, View.DOMAIN: 1, View.SYSTEM: 2}


@given(principals_st(), st.sampled_from(list(View)))
def test_a_view_is_allowed_exactly_up_to_the_highest(p: Principal, view: View) -> None:
    try:
        p.check_view(view)
        refused = False
    except Forbidden:
        refused = True
    assert refused is (RANK[view] > RANK[p.highest_view()])
    # the project view is everyone's
    p.check_view(View.PROJECT)


def test_domain_admin_reach() -> None:
    admin = principal(domainadmin("D1"), domainadmin("D2"), member("p1a"))
    assert admin.admin_domain_ids == frozenset({"D1", "D2"})
    assert admin.is_domain_admin("D1") and admin.is_domain_admin("D2")
    assert not admin.is_domain_admin("D3")
    assert not admin.is_domain_admin(None)
    assert not admin.is_sysadmin

    root = principal(sysadmin())
    assert root.is_sysadmin
    assert root.admin_domain_ids == frozenset()
    # a sysadmin administers every domain
    assert root.is_domain_admin("D1") and root.is_domain_admin("anything")

    # project roles never make anyone an administrator
    plain = principal(member("p1a"), viewer("p1b"))
    assert not plain.is_sysadmin
    assert plain.admin_domain_ids == frozenset()
    assert not plain.is_domain_admin("D1")


def test_project_role_is_the_strongest_on_the_current_project_only() -> None:
    assert principal(viewer("p1a"), member("p1a")).project_role() is Role.MEMBER
    assert principal(member("p1a"), viewer("p1a")).project_role() is Role.MEMBER
    assert principal(viewer("p1a")).project_role() is Role.VIEWER
    # roles on other projects do not count
    assert principal(viewer("p1a"), member("p1b")).project_role() is Role.VIEWER
    assert principal(member("p1b"), project="p1a").project_role() is None
    # admin roles are not project roles
    assert principal(domainadmin("D1")).project_role() is None
    assert principal(sysadmin()).project_role() is None
    assert principal(member("p1a"), project=None).project_role() is None


def test_works_in_project() -> None:
    assert principal(member("p1a")).works_in_project
    assert principal(viewer("p1a")).works_in_project
    # the domainadmin of the current project's domain, and a sysadmin, work in any project
    assert principal(domainadmin("D1"), project="p1b").works_in_project
    assert principal(sysadmin(), project="p2a").works_in_project
    # a revoked role, or a role elsewhere, no longer covers the token's project
    assert not principal(project="p1a").works_in_project
    assert not principal(member("p1b"), project="p1a").works_in_project
    assert not principal(domainadmin("D2"), project="p1a").works_in_project
    # no current project at all
    assert not principal(sysadmin(), project=None).works_in_project


def test_view_domain_id() -> None:
    # the current project's domain when the caller administers it
    assert principal(domainadmin("D1"), domainadmin("D2"), project="p2a").view_domain_id() == "D2"
    assert principal(sysadmin(), project="p2a").view_domain_id() == "D2"
    # else the first administered domain (stable: by id)
    two = principal(domainadmin("D3"), domainadmin("D2"), member("p1a"), project="p1a")
    assert two.view_domain_id() == "D2"
    assert principal(domainadmin("D2"), project="p1a").view_domain_id() == "D2"
    # a caller who administers nothing looks at its own project's domain
    assert principal(member("p1b"), project="p1b").view_domain_id() == "D1"
    assert principal(project=None).view_domain_id() is None


@given(principals_st())
def test_view_domain_is_administered_whenever_the_domain_view_is_allowed(p: Principal) -> None:
    if RANK[p.highest_view()] >= RANK[View.DOMAIN]:
        d = p.view_domain_id()
        assert d is not None
        assert p.is_domain_admin(d)
        if p.project_domain_id and p.is_domain_admin(p.project_domain_id):
            assert d == p.project_domain_id


def test_scope_types() -> None:
    assert {s.value for s in ScopeType} == {"system", "domain", "project"}
    assert {v.value for v in View} == {"system", "domain", "project"}
