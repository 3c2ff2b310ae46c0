"""The role → action table and ``authorize`` (SPEC §2). Visibility is checked before this."""

from __future__ import annotations

from enum import StrEnum

from hostimage.domain.sharing import Owner
from hostimage.domain.tenancy import Principal, Role
from hostimage.errors import Forbidden


class Action(StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    SET_PROTECTION = "set_protection"
    DELETE = "delete"
    CHANGE_PROJECT = "change_project"
    SAVE = "save"
    CONVERT = "convert"


# Project roles and what they may do on objects of their current project.
PROJECT_ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.MEMBER: frozenset(
        {
            Action.READ,
            Action.CREATE,
            Action.UPDATE,
            Action.SET_PROTECTION,
            Action.DELETE,
            Action.SAVE,
            Action.CONVERT,
        }
    ),
    Role.VIEWER: frozenset({Action.READ}),
}

# Actions a domain admin may take on anything owned in its domain (a sysadmin: anywhere).
ADMIN_ACTIONS: frozenset[Action] = frozenset(Action)


def allowed(principal: Principal, action: Action, owner: Owner) -> bool:
    """True when the caller's roles allow ``action`` on an object owned by ``owner``."""
    if principal.is_domain_admin(owner.domain_id):
        return action in ADMIN_ACTIONS
    if owner.project_id != principal.project_id:
        return False
    role = principal.project_role()
    return role is not None and action in PROJECT_ROLE_ACTIONS[role]


def authorize(principal: Principal, action: Action, owner: Owner) -> None:
    """Raise Forbidden (403) unless ``allowed``; the message names the missing right."""
    if not allowed(principal, action, owner):
        raise Forbidden(
            f"Your role does not allow '{action.value}' on this object.", code="forbidden"
        )


def authorize_change_project(principal: Principal, owner: Owner, target: Owner) -> None:
    """Change project: sysadmin anywhere, domain admin only within its own domain (even one
    who administers two domains does not move images between them: SPEC F5)."""
    if principal.is_sysadmin:
        return
    if owner.domain_id == target.domain_id and principal.is_domain_admin(owner.domain_id):
        return
    raise Forbidden(
        "Changing the project needs the domain administrator of both projects' domain "
        "or a system administrator.",
        code="forbidden",
    )


def may_create_in(principal: Principal, owner: Owner) -> bool:
    """True when the caller may create objects owned by ``owner``."""
    return allowed(principal, Action.CREATE, owner)


def authorize_manage_hosts(principal: Principal) -> None:
    """Registering, changing, syncing and removing compute hosts is for system
    administrators only (SPEC §9.2): a host's domains belong to any project."""
    if not principal.is_sysadmin:
        raise Forbidden("Managing compute hosts needs a system administrator.", code="forbidden")
