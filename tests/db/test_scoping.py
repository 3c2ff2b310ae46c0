"""The visibility filter's plan on SQLite: a list page walks the ``created_at`` index in page
order instead of collecting every match of each OR branch and sorting them (MULTI-INDEX OR);
PostgreSQL gets the plain columns and plans by itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg as PG_DIALECT

from hostimage.db.engine import make_engine
from hostimage.db.migrate import upgrade
from hostimage.db.models import HostImage
from hostimage.db.scoping import view_filter, visible
from hostimage.domain.tenancy import Grant, Principal, Role, View

MEMBER = Principal(
    user_id="u",
    user_name="m",
    user_domain_id="d1",
    project_id="p1",
    project_name="p",
    project_domain_id="d1",
    grants=(Grant(Role.MEMBER, "d1", "p1"), Grant(Role.DOMAINADMIN, "d1", None)),
)
HI = HostImage.__table__
PG = PG_DIALECT()


def _page(view: View) -> Select[Any]:
    return (
        select(HI.c.id)
        .where(view_filter(HostImage, MEMBER, view))
        .order_by(HI.c.created_at.desc(), HI.c.id.desc())
        .limit(20)
    )


def test_sqlite_pages_walk_the_created_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        for view in (View.PROJECT, View.DOMAIN):
            compiled = _page(view).compile(engine)
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}",
                tuple(compiled.params[k] for k in compiled.positiontup),
            ).all()
            details = " | ".join(str(row[-1]) for row in plan)
            assert "MULTI-INDEX OR" not in details, details
            assert "ix_host_images_created" in details, details
    engine.dispose()


def test_postgresql_gets_plain_columns() -> None:
    sql = str(select(HI.c.id).where(visible(HostImage, MEMBER)).compile(dialect=PG))
    assert "+host_images" not in sql and "host_images.project_id =" in sql


def test_filtered_statements_are_cached_and_keyed_by_their_columns() -> None:
    """A statement that cannot be cached is compiled on every request; one whose key missed
    the hinted column could be given another statement's SQL."""
    page = select(HI.c.id).where(view_filter(HostImage, MEMBER, View.PROJECT))
    key = page._generate_cache_key()
    assert key is not None
    other_values = MEMBER.__class__(**{**MEMBER.__dict__, "project_id": "p2"})
    same_shape = select(HI.c.id).where(view_filter(HostImage, other_values, View.PROJECT))
    assert same_shape._generate_cache_key() == key
    domain = select(HI.c.id).where(view_filter(HostImage, MEMBER, View.DOMAIN))
    assert domain._generate_cache_key() != key
