"""Share scopes, share requests and who may set them (SPEC F4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hostimage.domain.tenancy import Principal
from hostimage.errors import Forbidden, Invalid


class ShareScope(StrEnum):
    NONE = "none"
    PROJECT = "project"
    DOMAIN = "domain"
    SYSTEM = "system"


@dataclass(frozen=True)
class ShareState:
    """Where an object is shared now (or is asked to be shared)."""

    scope: ShareScope
    project_ids: frozenset[str] = frozenset()
    domain_ids: frozenset[str] = frozenset()

    @property
    def is_shared(self) -> bool:
        return self.scope is not ShareScope.NONE


@dataclass(frozen=True)
class Owner:
    domain_id: str
    project_id: str


class Level(StrEnum):
    """Who may set or undo a share: domain admins of the owner's domain, or sysadmins only."""

    DOMAIN = "domain"
    SYSTEM = "system"


def required_level(state: ShareState) -> Level:
    """The role level needed to set ``state`` or to change away from it.

    Not sharing and project sharing (partial or whole own domain) are domain-admin business;
    sharing to other domains or to everyone needs a sysadmin.
    """
    if state.scope is ShareScope.SYSTEM:
        return Level.SYSTEM
    if state.scope is ShareScope.DOMAIN and state.domain_ids:
        return Level.SYSTEM
    return Level.DOMAIN


def normalize_request(
    owner: Owner,
    scope: ShareScope,
    project_ids: list[str] | None,
    domain_ids: list[str] | None,
) -> ShareState:
    """Turn an API share body into the state it asks for.

    The owner's own project (and own domain) are dropped from the target lists; an empty
    project list means "not shared"; ids that do not belong to the scope are refused.
    """
    pids = frozenset(project_ids or ()) - {owner.project_id}
    dids = frozenset(domain_ids or ()) - {owner.domain_id}
    if scope is ShareScope.PROJECT:
        if domain_ids:
            raise Invalid("Project sharing takes project_ids, not domain_ids.", code="bad_share")
        if not pids:
            return ShareState(ShareScope.NONE)
        return ShareState(ShareScope.PROJECT, project_ids=pids)
    if scope is ShareScope.DOMAIN:
        if project_ids:
            raise Invalid("Domain sharing takes domain_ids, not project_ids.", code="bad_share")
        return ShareState(ShareScope.DOMAIN, domain_ids=dids)
    if project_ids or domain_ids:
        raise Invalid(f"Scope {scope.value} takes no target ids.", code="bad_share")
    return ShareState(scope)


def authorize_share(
    principal: Principal, owner: Owner, current: ShareState, wanted: ShareState
) -> None:
    """Refuse (403) a share change the caller's role does not reach.

    The caller must reach both the wanted scope and the image's current one, so nobody can
    unshare something shared above their level.
    """
    for state in (wanted, current):
        level = required_level(state)
        if level is Level.SYSTEM and not principal.is_sysadmin:
            raise Forbidden(
                "Only a system administrator may share to other domains or to everyone, "
                "or change such a share.",
                code="share_forbidden",
            )
        if level is Level.DOMAIN and not principal.is_domain_admin(owner.domain_id):
            raise Forbidden(
                "Sharing needs the domain administrator of the image's domain.",
                code="share_forbidden",
            )


def validate_share(wanted: ShareState, three_level: bool) -> None:
    """Refuse (400) domain sharing while three-level permissions are off."""
    if wanted.scope is ShareScope.DOMAIN and not three_level:
        raise Invalid(
            "Domain sharing needs three-level permissions to be enabled; "
            'use {"scope":"system"} to share with everyone.',
            code="three_level_disabled",
        )


def share_action(wanted: ShareState) -> str:
    """The op-log action for a share change: ``unshare`` when it ends sharing."""
    return "unshare" if wanted.scope is ShareScope.NONE else "share"
