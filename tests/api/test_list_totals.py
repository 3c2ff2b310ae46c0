"""List totals are remembered per filter while the catalogue revision stays the same; every
committed change to a host image, by any session or process, bumps the revision, so a total
is never stale. Checked against a fresh ``COUNT(*)`` after each kind of change."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from hostimage.db import revision
from hostimage.db.engine import make_session_factory, session_scope
from hostimage.db.models import HostImage
from tests.api.conftest import World
from tests.api.helpers_rbac import StatementCounter


def _total(w: World, **params: Any) -> int:
    r = w.admin.get("/host-images", params={"scope": "system", **params})
    assert r.status_code == 200, r.text
    total: int = r.json()["total"]
    return total


def _revision(engine: Engine) -> int:
    with session_scope(make_session_factory(engine)) as s:
        return revision.read(s)


def _counts(engine: Engine, **where: Any) -> int:
    with session_scope(make_session_factory(engine)) as s:
        q = select(func.count()).select_from(HostImage).filter_by(**where)
        return int(s.scalar(q) or 0)


def test_totals_follow_every_kind_of_change(world: World, app_env: tuple[Any, Engine]) -> None:
    _, engine = app_env
    w = world
    a = w.host_image("p1a", "tot-a", disks=1)
    b = w.host_image("p1a", "tot-b", disks=1)
    assert _total(w) == _counts(engine) == 2
    assert _total(w, share_scope="system") == 0

    assert w.admin.post(f"/host-images/{a['id']}/share", {"scope": "system"}).status_code == 200
    assert _total(w, share_scope="system") == 1
    assert _total(w, share_scope="none") == 1

    r = w.admin.post(f"/host-images/{b['id']}/change-project", {"project_id": w.projects["p2a"]})
    assert r.status_code == 200, r.text
    assert _total(w, project_id=w.projects["p2a"]) == 1
    assert _total(w, domain_id=w.domains["D1"]) == 1

    assert w.admin.patch(f"/host-images/{b['id']}", {"protected": False}).status_code == 200
    assert w.admin.delete(f"/host-images/{b['id']}").status_code == 202
    assert _total(w, status="deleting") == 1
    w.worker.drain()
    assert _total(w) == _counts(engine) == 1
    assert _total(w, status="deleting") == 0


@pytest.mark.parametrize("target", ["entity", "table"])
def test_a_change_by_another_session_invalidates_the_total(
    world: World, app_env: tuple[Any, Engine], target: str
) -> None:
    """Another process writing through its own sessions (here: a second session factory),
    with an ORM statement or one on the table itself."""
    _, engine = app_env
    w = world
    hi = w.host_image("p0a", "other-proc", disks=1)
    assert _total(w, os_type="Windows") == 0
    before = _revision(engine)
    table = HostImage.__table__
    statement = (
        update(HostImage).where(HostImage.id == hi["id"])
        if target == "entity"
        else update(table).where(table.c.id == hi["id"])
    )
    with session_scope(make_session_factory(engine)) as s:
        s.execute(statement.values(os_type="Windows"))
        s.commit()
    assert _revision(engine) == before + 1
    assert _total(w, os_type="Windows") == 1


def test_a_rolled_back_change_does_not_bump_and_reads_do_not_bump(
    world: World, app_env: tuple[Any, Engine]
) -> None:
    _, engine = app_env
    w = world
    hi = w.host_image("p0a", "rolled-back", disks=1)
    before = _revision(engine)
    with session_scope(make_session_factory(engine)) as s:
        row = s.get(HostImage, hi["id"])
        assert row is not None
        row.name = "never-saved"
        s.flush()
        s.rollback()
        s.commit()  # nothing left to commit: must not bump
    _total(w)
    assert w.admin.get(f"/host-images/{hi['id']}").status_code == 200
    assert _revision(engine) == before


def test_a_repeated_list_does_not_count_again(world: World, app_env: tuple[Any, Engine]) -> None:
    _, engine = app_env
    w = world
    w.host_image("p0a", "counted-once", disks=1)
    _total(w, name="counted")
    with StatementCounter(engine) as counter:
        assert _total(w, name="counted") == 1
    assert not [s for s in counter.statements if "count(" in s.lower()]
    w.host_image("p0a", "counted-twice", disks=1)
    with StatementCounter(engine) as counter:
        assert _total(w, name="counted") == 2
    assert [s for s in counter.statements if "count(" in s.lower()]
