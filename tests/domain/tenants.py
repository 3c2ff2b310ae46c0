"""A fixed little tenancy for the domain-rule tests, and ways to make principals in it.

Domains D1 (projects p1a, p1b) and D2 (projects p2a, p2b). A principal is what the rules
see of a caller: its grants and the token's current project.
"""

from __future__ import annotations

from hypothesis import strategies as st

from hostimage.domain.sharing import Owner
from hostimage.domain.tenancy import Grant, Principal, Role

DOMAIN_OF = {"p1a": "D1", "p1b": "D1", "p2a": "D2", "p2b": "D2"}
PROJECTS = tuple(DOMAIN_OF)
DOMAINS = ("D1", "D2")


def sysadmin() -> Grant:
    return Grant(Role.SYSADMIN)


def domainadmin(domain: str) -> Grant:
    return Grant(Role.DOMAINADMIN, domain_id=domain)


def member(project: str) -> Grant:
    return Grant(Role.MEMBER, project_id=project)


def viewer(project: str) -> Grant:
    return Grant(Role.VIEWER, project_id=project)


def principal(*grants: Grant, project: str | None = "p1a") -> Principal:
    """A caller holding ``grants`` whose token's current project is ``project``."""
    return Principal(
        user_id="u",
        user_name="user",
        user_domain_id=DOMAIN_OF[project] if project else "D1",
        project_id=project,
        project_name=project,
        project_domain_id=DOMAIN_OF[project] if project else None,
        grants=tuple(grants),
    )


def owned_by(project: str) -> Owner:
    """The owner of an object that lives in ``project``."""
    return Owner(domain_id=DOMAIN_OF[project], project_id=project)


# Any role assignment in the little tenancy (and the ids a role's scope may name).
grants_st = st.one_of(
    st.just(sysadmin()),
    st.sampled_from(DOMAINS).map(domainadmin),
    st.sampled_from(PROJECTS).map(member),
    st.sampled_from(PROJECTS).map(viewer),
)
grant_lists_st = st.lists(grants_st, max_size=5)
current_project_st = st.sampled_from(PROJECTS)
owners_st = st.sampled_from(PROJECTS).map(owned_by)


@st.composite
def principals_st(
    draw: st.DrawFn, grants: st.SearchStrategy[list[Grant]] = grant_lists_st
) -> Principal:
    """Any caller: any grants, any current project."""
    return principal(*draw(grants), project=draw(current_project_st))
