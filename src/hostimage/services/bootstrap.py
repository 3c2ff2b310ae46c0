"""First start: domain ``Default``, project ``system`` and user ``admin`` (SPEC §7)."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostimage.db.models import Domain, Project, RoleAssignment, User
from hostimage.services.auth import hash_password
from hostimage.services.settings import DEFAULT_DOMAIN


def bootstrap(session: Session, admin_password: str | None) -> str | None:
    """Create the first domain, project and admin if missing.

    Returns the generated admin password when one had to be made (to be printed once),
    else None. Idempotent.
    """
    domain = session.scalar(select(Domain).where(Domain.name == DEFAULT_DOMAIN))
    if domain is None:
        domain = Domain(name=DEFAULT_DOMAIN, description="The default domain")
        session.add(domain)
        session.flush()
    project = session.scalar(
        select(Project).where(Project.domain_id == domain.id, Project.name == "system")
    )
    if project is None:
        project = Project(name="system", domain_id=domain.id, description="System project")
        session.add(project)
        session.flush()
    generated = None
    admin = session.scalar(select(User).where(User.domain_id == domain.id, User.name == "admin"))
    if admin is None:
        password = admin_password
        if not password:
            password = generated = secrets.token_urlsafe(12)
        admin = User(
            name="admin",
            domain_id=domain.id,
            password_hash=hash_password(password),
            display_name="Administrator",
        )
        session.add(admin)
        session.flush()
        session.add(RoleAssignment(user_id=admin.id, role="sysadmin", scope="system"))
    session.commit()
    return generated
