"""The ONE SQL visibility filter: which host images / images a caller may see in a view."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true

from hostimage.db.models import HostImage, Image, Server, Share
from hostimage.domain.tenancy import Principal, View

Owned = type[HostImage] | type[Image]


def _shared_to(model: Owned, kind: str, target_id: str) -> ColumnElement[bool]:
    return exists(
        select(Share.resource_id).where(
            Share.resource_id == model.id,
            Share.target_kind == kind,
            Share.target_id == target_id,
        )
    )


def project_view(model: Owned, project_id: str, domain_id: str) -> ColumnElement[bool]:
    """Owned by the project; system-shared; domain-shared to its domain; shared to it."""
    return or_(
        model.project_id == project_id,
        model.share_scope == "system",
        and_(
            model.share_scope == "domain",
            or_(model.domain_id == domain_id, _shared_to(model, "domain", domain_id)),
        ),
        and_(model.share_scope == "project", _shared_to(model, "project", project_id)),
    )


def domain_view(model: Owned, domain_id: str) -> ColumnElement[bool]:
    """Owned by projects of the domain; system-shared; shared to the domain."""
    return or_(
        model.domain_id == domain_id,
        model.share_scope == "system",
        and_(model.share_scope == "domain", _shared_to(model, "domain", domain_id)),
    )


def view_filter(model: Owned, principal: Principal, view: View) -> ColumnElement[bool]:
    """The rows a list in ``view`` shows. The caller's right to the view is checked before."""
    if view is View.SYSTEM:
        return true()
    if view is View.DOMAIN:
        domain_id = principal.view_domain_id()
        return domain_view(model, domain_id) if domain_id else false()
    if principal.works_in_project and principal.project_id and principal.project_domain_id:
        return project_view(model, principal.project_id, principal.project_domain_id)
    return false()


def view_key(principal: Principal, view: View) -> tuple[str | None, ...]:
    """Everything :func:`view_filter` depends on: equal keys give the same rows."""
    if view is View.SYSTEM:
        return ("system",)
    if view is View.DOMAIN:
        return ("domain", principal.view_domain_id())
    if principal.works_in_project and principal.project_id and principal.project_domain_id:
        return ("project", principal.project_id, principal.project_domain_id)
    return ("nothing",)


def visible(model: Owned, principal: Principal) -> ColumnElement[bool]:
    """Every row the caller can see at all: the union of every view its roles give."""
    if principal.is_sysadmin:
        return true()
    clauses = [domain_view(model, d) for d in sorted(principal.admin_domain_ids)]
    if principal.works_in_project and principal.project_id and principal.project_domain_id:
        clauses.append(project_view(model, principal.project_id, principal.project_domain_id))
    return or_(*clauses) if clauses else false()


def server_view_filter(principal: Principal, view: View) -> ColumnElement[bool]:
    """Servers are never shared: a view shows those owned within its reach."""
    if view is View.SYSTEM:
        return true()
    if view is View.DOMAIN:
        domain_id = principal.view_domain_id()
        return Server.domain_id == domain_id if domain_id else false()
    if principal.works_in_project and principal.project_id:
        return Server.project_id == principal.project_id
    return false()


def server_visible(principal: Principal) -> ColumnElement[bool]:
    """Every server the caller can see: its project's, and its administered domains'."""
    if principal.is_sysadmin:
        return true()
    clauses = [Server.domain_id == d for d in sorted(principal.admin_domain_ids)]
    if principal.works_in_project and principal.project_id:
        clauses.append(Server.project_id == principal.project_id)
    return or_(*clauses) if clauses else false()
