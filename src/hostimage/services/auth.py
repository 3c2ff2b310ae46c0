"""Login, tokens, the caller's principal, project switch and logout."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Domain, Project, RoleAssignment, Token, User
from hostimage.domain.tenancy import Grant, Principal, Role
from hostimage.errors import Forbidden, NotAuthenticated
from hostimage.services import throttle
from hostimage.services.context import RequestContext

_hasher = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal user names.
_dummy_hash: list[str] = []


def configure_password_hashing(time_cost: int, memory_kib: int) -> None:
    """Set the argon2id cost for new hashes (existing hashes keep verifying with their own)."""
    global _hasher
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
    _dummy_hash.clear()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (CPU and memory heavy, like verifying one)."""
    return _hasher.hash(password)


def _dummy() -> str:
    if not _dummy_hash:
        _dummy_hash.append(_hasher.hash("not-a-real-password"))
    return _dummy_hash[0]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def grants_of(session: Session, user_id: str) -> tuple[Grant, ...]:
    """Every role the user holds, as rules see them."""
    rows = session.execute(
        select(RoleAssignment.role, RoleAssignment.domain_id, RoleAssignment.project_id).where(
            RoleAssignment.user_id == user_id
        )
    )
    return tuple(Grant(Role(r), d, p) for r, d, p in rows)


def choose_project(session: Session, grants: tuple[Grant, ...], wanted: str | None) -> str | None:
    """The token's current project (SPEC §5): the requested one if a role covers it, else the
    first project with a role, else the first project of an administered domain, else the
    ``system`` project for a sysadmin."""
    sysadmin = any(g.role is Role.SYSADMIN for g in grants)
    admin_domains = {g.domain_id for g in grants if g.role is Role.DOMAINADMIN}
    project_ids = [g.project_id for g in grants if g.project_id]
    if wanted:
        proj = session.get(Project, wanted)
        if proj and (sysadmin or proj.domain_id in admin_domains or wanted in project_ids):
            return wanted
    if project_ids:
        first = session.scalar(
            select(Project.id).where(Project.id.in_(project_ids)).order_by(Project.name).limit(1)
        )
        if first:
            return first
    if admin_domains:
        first = session.scalar(
            select(Project.id)
            .where(Project.domain_id.in_(admin_domains))
            .order_by(Project.name)
            .limit(1)
        )
        if first:
            return first
    if sysadmin:
        return session.scalar(
            select(Project.id)
            .join(Domain, Domain.id == Project.domain_id)
            .where(Project.name == "system", Domain.name == "Default")
        )
    return None


def _issue(
    session: Session,
    user: User,
    project_id: str | None,
    ttl: int,
    attempt: throttle.Attempt | None = None,
) -> dict[str, Any]:
    begin_write(session)
    if attempt is not None:
        throttle.clear(session, attempt)
    token = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(seconds=ttl)
    row = Token(
        token_hash=_token_hash(token), user_id=user.id, project_id=project_id, expires_at=expires
    )
    session.add(row)
    session.commit()
    principal = principal_for(session, user, project_id, row.id)
    return {"token": token, "expires_at": expires, **whoami(RequestContext(principal))}


@dataclass(frozen=True)
class LoginCheck:
    """A login past the throttle, waiting for its password to be verified."""

    attempt: throttle.Attempt
    user_id: str | None
    password_hash: str | None


def start_login(
    session: Session, username: str, domain: str | None, client_ip: str | None
) -> LoginCheck:
    """Refuse a throttled login (429, without looking at the password), else note it as
    pending and find the user's password hash (none for an unknown user)."""
    domain = domain or "Default"
    attempt = throttle.begin_attempt(session, throttle.keys_of(username, domain, client_ip))
    row = session.execute(
        select(User.id, User.password_hash)
        .join(Domain, Domain.id == User.domain_id)
        .where(User.name == username, Domain.name == domain)
    ).first()
    if row is None:
        return LoginCheck(attempt, None, None)
    return LoginCheck(attempt, row[0], row[1])


def check_password(check: LoginCheck, password: str) -> bool:
    """Whether ``password`` is the user's. The argon2 work (CPU and memory) is done for an
    unknown user too, so timing does not reveal user names. Run it on the password pool,
    not on a request thread."""
    try:
        _hasher.verify(check.password_hash or _dummy(), password)
    except (VerificationError, InvalidHashError):
        return False
    return check.user_id is not None


def finish_login(
    session: Session, check: LoginCheck, verified: bool, project_id: str | None, ttl: int
) -> dict[str, Any]:
    """Issue a token scoped to one current project and clear the user's and the address's
    failures; or record the failure and answer 401."""
    user = session.get(User, check.user_id) if verified and check.user_id else None
    if user is None:
        throttle.record_failure(session, check.attempt)
        raise NotAuthenticated("Wrong user name, domain or password.", code="bad_credentials")
    project = choose_project(session, grants_of(session, user.id), project_id)
    return _issue(session, user, project, ttl, check.attempt)


def abandon_login(session: Session, check: LoginCheck) -> None:
    """The password was never checked (the service was busy): the attempt does not count."""
    throttle.abandon(session, check.attempt)


def switch_project(
    session: Session, ctx: RequestContext, project_id: str, ttl: int
) -> dict[str, Any]:
    """A new token for ``project_id`` (when a role covers it; else the default choice)."""
    user = session.get(User, ctx.principal.user_id)
    assert user is not None
    project = choose_project(session, ctx.principal.grants, project_id)
    if project != project_id:
        raise Forbidden("You have no role in that project.", code="no_role_in_project")
    return _issue(session, user, project, ttl)


def principal_for(
    session: Session, user: User, project_id: str | None, token_id: str | None
) -> Principal:
    """The principal of ``user`` working in ``project_id``, with every role it holds."""
    project = session.get(Project, project_id) if project_id else None
    return _principal(user, project, token_id, grants_of(session, user.id))


def _principal(
    user: User, project: Project | None, token_id: str | None, grants: tuple[Grant, ...]
) -> Principal:
    return Principal(
        user_id=user.id,
        user_name=user.name,
        user_domain_id=user.domain_id,
        project_id=project.id if project else None,
        project_name=project.name if project else None,
        project_domain_id=project.domain_id if project else None,
        grants=grants,
        token_id=token_id,
    )


_TOKEN, _USER, _PROJECT, _ROLE = (
    Token.__table__.c,
    User.__table__.c,
    Project.__table__.c,
    RoleAssignment.__table__.c,
)
# Plain columns, not ORM objects: this runs before every request.
_AUTHENTICATE = (
    select(
        _TOKEN.id,
        _TOKEN.revoked,
        _TOKEN.expires_at,
        _USER.id,
        _USER.name,
        _USER.domain_id,
        _PROJECT.id,
        _PROJECT.name,
        _PROJECT.domain_id,
        _ROLE.role,
        _ROLE.domain_id,
        _ROLE.project_id,
    )
    .join(User.__table__, _USER.id == _TOKEN.user_id)
    .outerjoin(Project.__table__, _PROJECT.id == _TOKEN.project_id)
    .outerjoin(RoleAssignment.__table__, _ROLE.user_id == _USER.id)
)


def authenticate(session: Session, token: str | None) -> Principal:
    """The principal behind a bearer token; 401 for a missing, unknown, expired or revoked one.

    One query: the token, its user and project, and every role of the user.
    """
    if not token:
        raise NotAuthenticated("Missing bearer token.")
    rows = session.execute(_AUTHENTICATE.where(_TOKEN.token_hash == _token_hash(token))).all()
    if not rows:
        raise NotAuthenticated("Unknown token.", code="bad_token")
    token_id, revoked, expires_at, user_id, user_name, user_domain, pid, pname, pdomain = rows[0][
        :9
    ]
    if revoked or expires_at <= utcnow():
        raise NotAuthenticated("The token has expired or was revoked.", code="bad_token")
    return Principal(
        user_id=user_id,
        user_name=user_name,
        user_domain_id=user_domain,
        project_id=pid,
        project_name=pname,
        project_domain_id=pdomain,
        grants=tuple(Grant(Role(r[9]), r[10], r[11]) for r in rows if r[9] is not None),
        token_id=token_id,
    )


def logout(session: Session, ctx: RequestContext) -> None:
    """Revoke the caller's token."""
    begin_write(session)
    session.execute(update(Token).where(Token.id == ctx.principal.token_id).values(revoked=True))
    session.commit()


def purge_expired_tokens(session: Session) -> int:
    """Delete tokens past expiry or revoked; returns how many."""
    begin_write(session)
    res = session.execute(delete(Token).where(or_(Token.expires_at <= utcnow(), Token.revoked)))
    session.commit()
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def whoami(ctx: RequestContext) -> dict[str, Any]:
    """The caller: user, current project, roles and the views it may pick."""
    p = ctx.principal
    highest = p.highest_view()
    views = ["project", "domain", "system"][: ["project", "domain", "system"].index(highest) + 1]
    return {
        "user": {"id": p.user_id, "name": p.user_name, "domain_id": p.user_domain_id},
        "project": (
            {"id": p.project_id, "name": p.project_name, "domain_id": p.project_domain_id}
            if p.project_id
            else None
        ),
        "roles": [
            {"role": g.role.value, "domain_id": g.domain_id, "project_id": g.project_id}
            for g in p.grants
        ],
        "highest_view": highest.value,
        "views": views,
    }
