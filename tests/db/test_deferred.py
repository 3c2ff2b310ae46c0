"""Rows queued with ``insert_on_commit`` are written by the commit, in its transaction and in
queue order, and dropped by a rollback (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from hostimage.db import deferred
from hostimage.db.engine import (
    WriteWithoutTransaction,
    begin_read,
    begin_write,
    make_session_factory,
)
from hostimage.db.models import LogEntry, SettingRow
from tests.conftest import wipe

LOG = LogEntry.__table__


@pytest.fixture()
def engine(database: tuple[str, Engine]) -> Engine:
    engine = database[1]
    wipe(engine)
    return engine


def _row(n: int) -> dict[str, Any]:
    return {
        "obj_type": "host_image",
        "obj_id": f"obj{n}",
        "obj_name": f"name {n}",
        "root_id": f"obj{n}",
        "action": "update",
        "notes": {"n": n},
    }


def _logged(engine: Engine) -> list[tuple[str, Any]]:
    with engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(select(LOG.c.obj_id, LOG.c.notes).order_by(LOG.c.id))
        ]


def test_queued_rows_are_written_by_the_commit_in_queue_order(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory() as s:
        begin_read(s)
        begin_write(s)
        for n in (3, 1, 2):
            deferred.insert_on_commit(s, LOG, _row(n))
        assert _logged(engine) == []
        s.commit()
    assert _logged(engine) == [("obj3", {"n": 3}), ("obj1", {"n": 1}), ("obj2", {"n": 2})]


def test_queued_rows_commit_atomically_with_the_change(engine: Engine) -> None:
    """They are sent before the COMMIT, inside the transaction: a failure while sending them
    rolls the change back too."""
    factory = make_session_factory(engine)
    with factory() as s:
        begin_write(s)
        s.add(SettingRow(key="k", value=1))
        deferred.insert_on_commit(s, LOG, {**_row(1), "obj_type": None})  # NOT NULL column
        with pytest.raises(Exception, match=r"(?i)null"):
            s.commit()
    with engine.connect() as conn:
        assert conn.execute(select(SettingRow.key)).all() == []
    assert _logged(engine) == []


def test_a_rollback_drops_the_queue(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory() as s:
        begin_write(s)
        deferred.insert_on_commit(s, LOG, _row(1))
        s.rollback()
        begin_write(s)
        deferred.insert_on_commit(s, LOG, _row(2))
        s.commit()
    assert [obj for obj, _ in _logged(engine)] == ["obj2"]


def test_many_rows_go_in_one_statement(engine: Engine) -> None:
    factory = make_session_factory(engine)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with factory() as s:
            begin_write(s)
            for n in range(50):
                deferred.insert_on_commit(s, LOG, _row(n))
            s.commit()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(_logged(engine)) == 50
    assert len(statements) == 1


def test_queueing_while_reading_without_a_transaction_is_refused_at_commit(
    engine: Engine,
) -> None:
    factory = make_session_factory(engine)
    with factory() as s:
        begin_read(s)
        deferred.insert_on_commit(s, LOG, _row(1))
        with pytest.raises(WriteWithoutTransaction):
            s.commit()
    assert _logged(engine) == []


def test_a_session_that_would_not_send_them_refuses_to_queue(engine: Engine) -> None:
    with Session(engine) as s, pytest.raises(RuntimeError, match="deferred"):
        deferred.insert_on_commit(s, LOG, _row(1))
