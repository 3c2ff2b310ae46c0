"""Roles, role assignments, principals and views (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hostimage.errors import Forbidden


class Role(StrEnum):
    SYSADMIN = "sysadmin"
    DOMAINADMIN = "domainadmin"
    MEMBER = "member"
    VIEWER = "viewer"


class ScopeType(StrEnum):
    SYSTEM = "system"
    DOMAIN = "domain"
    PROJECT = "project"


# The fixed role → scope table; a role may only be assigned at its own scope type.
ROLE_SCOPE: dict[Role, ScopeType] = {
    Role.SYSADMIN: ScopeType.SYSTEM,
    Role.DOMAINADMIN: ScopeType.DOMAIN,
    Role.MEMBER: ScopeType.PROJECT,
    Role.VIEWER: ScopeType.PROJECT,
}


class View(StrEnum):
    SYSTEM = "system"
    DOMAIN = "domain"
    PROJECT = "project"


VIEW_RANK = {View.PROJECT: 0, View.DOMAIN: 1, View.SYSTEM: 2}


@dataclass(frozen=True)
class Grant:
    """One role assignment as the rules see it."""

    role: Role
    domain_id: str | None = None
    project_id: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, the token's current project and every role the user holds.

    Project roles (member, viewer) act only on the token's current project; admin roles act
    wherever their scope reaches.
    """

    user_id: str
    user_name: str
    user_domain_id: str
    project_id: str | None
    project_name: str | None
    project_domain_id: str | None
    grants: tuple[Grant, ...] = field(default_factory=tuple)
    token_id: str | None = None

    @property
    def is_sysadmin(self) -> bool:
        return any(g.role is Role.SYSADMIN for g in self.grants)

    @property
    def admin_domain_ids(self) -> frozenset[str]:
        return frozenset(
            g.domain_id for g in self.grants if g.role is Role.DOMAINADMIN and g.domain_id
        )

    def project_role(self) -> Role | None:
        """The strongest project role held on the current project, if any."""
        roles = {g.role for g in self.grants if g.project_id and g.project_id == self.project_id}
        if Role.MEMBER in roles:
            return Role.MEMBER
        if Role.VIEWER in roles:
            return Role.VIEWER
        return None

    @property
    def works_in_project(self) -> bool:
        """True when a role still covers the token's current project (roles can be revoked
        while a token lives)."""
        if self.project_id is None:
            return False
        return self.project_role() is not None or self.is_domain_admin(self.project_domain_id)

    def is_domain_admin(self, domain_id: str | None) -> bool:
        """True when the caller administers ``domain_id`` (sysadmin administers every domain)."""
        return self.is_sysadmin or (domain_id is not None and domain_id in self.admin_domain_ids)

    def highest_view(self) -> View:
        """The highest console view the caller may pick (管理后台 > 域管理后台 > project)."""
        if self.is_sysadmin:
            return View.SYSTEM
        if self.admin_domain_ids:
            return View.DOMAIN
        return View.PROJECT

    def view_domain_id(self) -> str | None:
        """The domain a domain view looks at: the current project's domain when administered."""
        if self.project_domain_id and self.is_domain_admin(self.project_domain_id):
            return self.project_domain_id
        admin = sorted(self.admin_domain_ids)
        return admin[0] if admin else self.project_domain_id

    def check_view(self, view: View) -> None:
        """Refuse (403) a view above the caller's highest role."""
        if VIEW_RANK[view] > VIEW_RANK[self.highest_view()]:
            raise Forbidden(
                f"The {view.value} view needs a higher role than yours.", code="view_forbidden"
            )
