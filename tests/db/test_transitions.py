"""Status writes are compare-and-set through the kind's table, on both databases: an illegal
assignment raises at once; a flush never overwrites a status another writer changed; ``cas``
moves only the rows that may move."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from hostimage.db.engine import begin_read, begin_write
from hostimage.db.models import FormatCopy, Image, Server, Task
from hostimage.db.queue import enqueue
from hostimage.db.transitions import cas, machine_of
from hostimage.domain.status import IMAGE, IllegalTransition
from tests.api.conftest import World


def _image(world: World, status: str = "queued") -> str:
    r = world.admin.post(
        "/images", {"name": "t", "disk_format": "raw", "project_id": world.projects["p0a"]}
    )
    iid = str(r.json()["id"])
    if status != "queued":
        with world.worker.rt.factory() as s:
            begin_write(s)
            assert cas(s, Image, [iid], status) == 1
            s.commit()
    return iid


def _read(session: Session, image_id: str) -> Image:
    """The image as a request reads it: outside a transaction, before it writes."""
    begin_read(session)
    img = session.get(Image, image_id)
    assert img is not None
    return img


def test_every_status_model_is_guarded() -> None:
    assert machine_of(Image) is IMAGE
    for model in (Server, Task, FormatCopy):
        assert machine_of(model).kind


def test_an_illegal_assignment_raises_at_once(world: World) -> None:
    iid = _image(world)
    with world.worker.rt.factory() as s:
        img = s.get(Image, iid)
        assert img is not None
        with pytest.raises(IllegalTransition, match="image cannot go from 'queued' to 'active'"):
            img.status = "active"
        img.status = "saving"  # legal
        with pytest.raises(IllegalTransition):
            img.status = "queued"


def test_a_flush_never_overwrites_a_status_changed_meanwhile(world: World) -> None:
    iid = _image(world)
    factory = world.worker.rt.factory
    with factory() as first, factory() as second:
        a, b = _read(first, iid), _read(second, iid)
        begin_write(first)
        a.status = "saving"
        first.commit()
        begin_write(second)
        b.status = "deleting"  # legal from what b read (queued), but the row moved on
        with pytest.raises(StaleDataError):
            second.commit()
    with factory() as s:
        assert s.scalar(select(Image.status).where(Image.id == iid)) == "saving"


def test_an_edit_of_another_column_checks_the_status_too(world: World) -> None:
    iid = _image(world)
    factory = world.worker.rt.factory
    with factory() as first, factory() as second:
        a, b = _read(first, iid), _read(second, iid)
        begin_write(first)
        a.status = "deleting"
        first.commit()
        begin_write(second)
        b.description = "written after the image began to be deleted"
        with pytest.raises(StaleDataError):
            second.commit()


def test_cas_moves_only_the_rows_that_may_move(world: World) -> None:
    queued, active, deleting = _image(world), _image(world), _image(world)
    with world.worker.rt.factory() as s:
        begin_write(s)
        assert cas(s, Image, [active], "saving") == 1
        assert cas(s, Image, [active], "active") == 1
        assert cas(s, Image, [deleting], "deleting") == 1
        s.commit()
        begin_write(s)
        # active may not be saved; queued may; deleting may not move at all
        assert cas(s, Image, [queued, active, deleting], "saving") == 1
        assert cas(s, Image, [queued, active, deleting], "active", expected=["saving"]) == 1
        with pytest.raises(IllegalTransition, match="deleting"):
            cas(s, Image, [deleting], "active", expected=["deleting"])
        s.commit()
        got = dict(s.execute(select(Image.id, Image.status)).tuples().all())
    assert (got[queued], got[active], got[deleting]) == ("active", "active", "deleting")


def test_cas_on_tasks_with_a_condition(world: World) -> None:
    with world.worker.rt.factory() as s:
        begin_write(s)
        task = enqueue(s, "gc", "storage", "-")
        s.commit()
        begin_write(s)
        assert cas(s, Task, [task.id], "running", claim="x") == 1
        assert cas(s, Task, [task.id], "succeeded", where=[Task.claim == "y"]) == 0
        assert cas(s, Task, [task.id], "succeeded", where=[Task.claim == "x"]) == 1
        s.commit()
        assert s.scalar(select(Task.status).where(Task.id == task.id)) == "succeeded"
