"""The ONE SQL visibility filter: which host images / images a caller may see in a view."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from hostimage.db.models import HostImage, Image, Server, Share
from hostimage.domain.tenancy import Principal, View

Owned = type[HostImage] | type[Image]


# Table columns, not ORM attributes: the same expression serves ORM and Core queries.
_SHARE = Share.__table__.c


class _Unindexed(ColumnElement[Any]):
    """A column that SQLite must not look up through an index (``+column``).

    For the visibility OR, SQLite's planner otherwise collects the matches of each branch
    through its index and sorts them all (a MULTI-INDEX OR: 70-350 ms for a page at 100,000
    images); kept off those indexes, it walks the ``created_at`` index in page order and
    stops when the page is full (about 1 ms). PostgreSQL weighs both plans itself.
    """

    # The wrapped column is part of the statement cache key: statements that differ only in
    # which column is wrapped must not share a compiled form.
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012 (SQLAlchemy's own declaration)
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type

    @property
    def _from_objects(self) -> list[Any]:
        return self.column._from_objects


@compiles(_Unindexed)
def _compile_plain(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(_Unindexed, "sqlite")
def _compile_unindexed(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.column, **kw))


def _columns(model: Owned) -> tuple[Any, Any, Any]:
    c = model.__table__.c
    return _Unindexed(c.project_id), _Unindexed(c.domain_id), _Unindexed(c.share_scope)


def _shared_to(model: Owned, kind: str, target_id: str) -> ColumnElement[bool]:
    return exists(
        select(_SHARE.resource_id).where(
            _SHARE.resource_id == model.__table__.c.id,
            _SHARE.target_kind == kind,
            _SHARE.target_id == target_id,
        )
    )


def project_view(model: Owned, project_id: str, domain_id: str) -> ColumnElement[bool]:
    """Owned by the project; system-shared; domain-shared to its domain; shared to it."""
    project, domain, scope = _columns(model)
    return or_(
        project == project_id,
        scope == "system",
        and_(
            scope == "domain",
            or_(domain == domain_id, _shared_to(model, "domain", domain_id)),
        ),
        and_(scope == "project", _shared_to(model, "project", project_id)),
    )


def domain_view(model: Owned, domain_id: str) -> ColumnElement[bool]:
    """Owned by projects of the domain; system-shared; shared to the domain."""
    _, domain, scope = _columns(model)
    return or_(
        domain == domain_id,
        scope == "system",
        and_(scope == "domain", _shared_to(model, "domain", domain_id)),
    )


def view_filter(model: Owned, principal: Principal, view: View) -> ColumnElement[bool]:
    """The rows a list in ``view`` shows. The caller's right to the view is checked before."""
    return _view_filter(model, view_key(principal, view))


def view_key(principal: Principal, view: View) -> tuple[str | None, ...]:
    """Everything :func:`view_filter` depends on: equal keys give the same rows."""
    if view is View.SYSTEM:
        return ("system",)
    if view is View.DOMAIN:
        return ("domain", principal.view_domain_id())
    project = _current_project(principal)
    return ("project", *project) if project else ("nothing",)


def visible(model: Owned, principal: Principal) -> ColumnElement[bool]:
    """Every row the caller can see at all: the union of every view its roles give."""
    if principal.is_sysadmin:
        return true()
    admin_domains = tuple(sorted(principal.admin_domain_ids))
    return _visible(model, admin_domains, _current_project(principal))


def _current_project(principal: Principal) -> tuple[str, str] | None:
    """(project, its domain) when a role still covers the token's current project."""
    if principal.works_in_project and principal.project_id and principal.project_domain_id:
        return principal.project_id, principal.project_domain_id
    return None


# Filters are built once per distinct caller and reused: building an expression costs more
# than executing the statement it ends up in. (Expressions are immutable, so threads share
# them safely.)
@lru_cache(maxsize=4096)
def _view_filter(model: Owned, key: tuple[str | None, ...]) -> ColumnElement[bool]:
    if key[0] == "system":
        return true()
    if key[0] == "domain":
        return domain_view(model, key[1]) if key[1] else false()
    if key[0] == "project" and key[1] and key[2]:
        return project_view(model, key[1], key[2])
    return false()


@lru_cache(maxsize=4096)
def _visible(
    model: Owned, admin_domains: tuple[str, ...], project: tuple[str, str] | None
) -> ColumnElement[bool]:
    clauses = [domain_view(model, d) for d in admin_domains]
    if project is not None:
        clauses.append(project_view(model, *project))
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
