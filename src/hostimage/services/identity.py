"""Identity administration: domains, projects, users and role assignments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hostimage.db.engine import begin_write
from hostimage.db.models import Domain, Project, RoleAssignment, User
from hostimage.domain.tenancy import ROLE_SCOPE, Role, ScopeType
from hostimage.errors import Conflict, Forbidden, Invalid, NotFound
from hostimage.services.auth import hash_password
from hostimage.services.context import RequestContext
from hostimage.services.settings import DEFAULT_DOMAIN, three_level


def _domain_dict(d: Domain) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "description": d.description, "created_at": d.created_at}


def _project_dict(p: Project, domain_name: str | None = None) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "domain_name": domain_name,
        "description": p.description,
        "created_at": p.created_at,
    }


def _user_dict(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "display_name": u.display_name,
        "email": u.email,
        "created_at": u.created_at,
    }


def _require_domain_admin(ctx: RequestContext, domain_id: str) -> None:
    if not ctx.principal.is_domain_admin(domain_id):
        raise Forbidden("This needs the administrator of that domain or a system administrator.")


def _commit_unique(session: Session, what: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"{what} already exists.", code="name_taken") from exc


def list_domains(session: Session, ctx: RequestContext) -> list[dict[str, Any]]:
    """Domains the caller can see: all for a sysadmin, else administered ones and its own."""
    p = ctx.principal
    q = select(Domain).order_by(Domain.name)
    if not p.is_sysadmin:
        ids = set(p.admin_domain_ids) | {p.user_domain_id}
        if p.project_domain_id:
            ids.add(p.project_domain_id)
        q = q.where(Domain.id.in_(ids))
    return [_domain_dict(d) for d in session.scalars(q)]


def create_domain(
    session: Session, ctx: RequestContext, name: str, description: str
) -> dict[str, Any]:
    """Create a domain (sysadmin); names are unique (409)."""
    begin_write(session)
    if not ctx.principal.is_sysadmin:
        raise Forbidden("Only a system administrator may create domains.")
    d = Domain(name=name, description=description)
    session.add(d)
    _commit_unique(session, f"A domain named {name!r}")
    return _domain_dict(d)


def list_projects(
    session: Session, ctx: RequestContext, domain_id: str | None
) -> list[dict[str, Any]]:
    """Projects the caller can see: all (sysadmin), its domains' (domainadmin), its own."""
    p = ctx.principal
    q = select(Project, Domain.name).join(Domain, Domain.id == Project.domain_id)
    if not p.is_sysadmin:
        own = {g.project_id for g in p.grants if g.project_id}
        q = q.where(Project.domain_id.in_(p.admin_domain_ids) | Project.id.in_(own))
    if domain_id:
        q = q.where(Project.domain_id == domain_id)
    q = q.order_by(Domain.name, Project.name)
    return [_project_dict(proj, dname) for proj, dname in session.execute(q)]


def create_project(
    session: Session, ctx: RequestContext, name: str, domain_id: str, description: str
) -> dict[str, Any]:
    """Create a project in a domain (its admin or a sysadmin). With three-level permissions
    off, projects live only in ``Default`` (400)."""
    begin_write(session)
    domain = session.get(Domain, domain_id)
    if domain is None:
        raise Invalid(f"Unknown domain {domain_id}.", code="unknown_domain")
    _require_domain_admin(ctx, domain_id)
    if domain.name != DEFAULT_DOMAIN and not three_level(session):
        raise Invalid(
            "Projects outside the Default domain need three-level permissions.",
            code="three_level_disabled",
        )
    proj = Project(name=name, domain_id=domain_id, description=description)
    session.add(proj)
    _commit_unique(session, f"A project named {name!r} in this domain")
    return _project_dict(proj, domain.name)


def list_users(
    session: Session, ctx: RequestContext, domain_id: str | None
) -> list[dict[str, Any]]:
    """Users of the domains the caller administers (all for a sysadmin)."""
    p = ctx.principal
    q = select(User).order_by(User.name)
    if not p.is_sysadmin:
        q = q.where(User.domain_id.in_(p.admin_domain_ids) | (User.id == p.user_id))
    if domain_id:
        q = q.where(User.domain_id == domain_id)
    return [_user_dict(u) for u in session.scalars(q)]


def create_user(
    session: Session,
    ctx: RequestContext,
    name: str,
    domain_id: str,
    password: str,
    display_name: str = "",
    email: str = "",
) -> dict[str, Any]:
    """Create a user in a domain (its admin or a sysadmin); names are unique per domain."""
    begin_write(session)
    if session.get(Domain, domain_id) is None:
        raise Invalid(f"Unknown domain {domain_id}.", code="unknown_domain")
    _require_domain_admin(ctx, domain_id)
    user = User(
        name=name,
        domain_id=domain_id,
        password_hash=hash_password(password),
        display_name=display_name,
        email=email,
    )
    session.add(user)
    _commit_unique(session, f"A user named {name!r} in this domain")
    return _user_dict(user)


def _assignment_dict(ra: RoleAssignment) -> dict[str, Any]:
    return {
        "id": ra.id,
        "user_id": ra.user_id,
        "role": ra.role,
        "scope": ra.scope,
        "domain_id": ra.domain_id,
        "project_id": ra.project_id,
        "created_at": ra.created_at,
    }


def list_assignments(
    session: Session, ctx: RequestContext, user_id: str | None
) -> list[dict[str, Any]]:
    """Role assignments the caller administers (its own always)."""
    p = ctx.principal
    q = select(RoleAssignment).order_by(RoleAssignment.created_at)
    if not p.is_sysadmin:
        domain_projects = select(Project.id).where(Project.domain_id.in_(p.admin_domain_ids))
        q = q.where(
            RoleAssignment.domain_id.in_(p.admin_domain_ids)
            | RoleAssignment.project_id.in_(domain_projects)
            | (RoleAssignment.user_id == p.user_id)
        )
    if user_id:
        q = q.where(RoleAssignment.user_id == user_id)
    return [_assignment_dict(r) for r in session.scalars(q)]


def assign_role(
    session: Session,
    ctx: RequestContext,
    user_id: str,
    role: str,
    scope: str,
    domain_id: str | None,
    project_id: str | None,
) -> dict[str, Any]:
    """Give a user a role at a scope. Sysadmins assign anything; a domain admin assigns
    project roles within its domain. The role must match its scope type (400)."""
    begin_write(session)
    try:
        r, s = Role(role), ScopeType(scope)
    except ValueError as exc:
        raise Invalid(str(exc), code="bad_role") from exc
    if ROLE_SCOPE[r] is not s:
        raise Invalid(
            f"Role {r.value} is assigned at scope {ROLE_SCOPE[r].value}.", code="bad_role"
        )
    if session.get(User, user_id) is None:
        raise Invalid(f"Unknown user {user_id}.", code="unknown_user")
    p = ctx.principal
    if s is ScopeType.SYSTEM:
        domain_id = project_id = None
        if not p.is_sysadmin:
            raise Forbidden("Only a system administrator may grant sysadmin.")
    elif s is ScopeType.DOMAIN:
        project_id = None
        if not domain_id or session.get(Domain, domain_id) is None:
            raise Invalid("A domain role needs an existing domain_id.", code="unknown_domain")
        if not p.is_sysadmin:
            raise Forbidden("Only a system administrator may grant domainadmin.")
    else:
        proj = session.get(Project, project_id) if project_id else None
        if proj is None:
            raise Invalid("A project role needs an existing project_id.", code="unknown_project")
        domain_id = None
        _require_domain_admin(ctx, proj.domain_id)
    duplicate = session.scalar(
        select(RoleAssignment.id).where(
            RoleAssignment.user_id == user_id,
            RoleAssignment.role == r.value,
            RoleAssignment.domain_id.is_(None)
            if domain_id is None
            else RoleAssignment.domain_id == domain_id,
            RoleAssignment.project_id.is_(None)
            if project_id is None
            else RoleAssignment.project_id == project_id,
        )
    )
    if duplicate:
        raise Conflict("The user already has that role there.", code="duplicate_assignment")
    ra = RoleAssignment(
        user_id=user_id, role=r.value, scope=s.value, domain_id=domain_id, project_id=project_id
    )
    session.add(ra)
    _commit_unique(session, "That role assignment")
    return _assignment_dict(ra)


def remove_assignment(session: Session, ctx: RequestContext, assignment_id: str) -> None:
    """Revoke a role assignment (same rights as granting it)."""
    begin_write(session)
    ra = session.get(RoleAssignment, assignment_id)
    if ra is None:
        raise NotFound("No such role assignment.")
    p = ctx.principal
    if ra.project_id:
        proj = session.get(Project, ra.project_id)
        _require_domain_admin(ctx, proj.domain_id if proj else "")
    elif not p.is_sysadmin:
        raise Forbidden("Only a system administrator may revoke that role.")
    session.execute(delete(RoleAssignment).where(RoleAssignment.id == assignment_id))
    session.commit()
