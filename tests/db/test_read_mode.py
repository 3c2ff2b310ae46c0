"""Requests read without a transaction until ``begin_write``; a write before it is refused,
never committed statement by statement (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select, update

from hostimage.db.engine import (
    WriteWithoutTransaction,
    begin_read,
    begin_write,
    make_session_factory,
)
from hostimage.db.models import SettingRow
from tests.conftest import wipe


@pytest.fixture()
def engine(database: tuple[str, Engine]) -> Engine:
    engine = database[1]
    wipe(engine)
    return engine


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SettingRow)).scalar_one())


def test_a_change_flushed_before_begin_write_is_refused_and_not_written(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory() as s:
        begin_read(s)
        s.add(SettingRow(key="k", value=1))
        with pytest.raises(WriteWithoutTransaction):
            s.flush()
    assert _count(engine) == 0


def test_a_bulk_statement_before_begin_write_is_refused(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory() as s:
        s.add(SettingRow(key="k", value=1))
        s.commit()
    with factory() as s:
        begin_read(s)
        with pytest.raises(WriteWithoutTransaction):
            s.execute(update(SettingRow).values(value=2))
    with engine.connect() as conn:
        assert conn.execute(select(SettingRow.value)).scalar_one() == 1


def test_begin_write_after_reading_writes_in_one_transaction(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory() as s:
        begin_read(s)
        assert s.scalar(select(func.count()).select_from(SettingRow)) == 0
        begin_write(s)
        s.add(SettingRow(key="a", value=1))
        s.flush()
        s.add(SettingRow(key="b", value=2))
        s.flush()
        assert _count(engine) == 0  # nothing visible to others before the commit
        s.rollback()
    assert _count(engine) == 0
    with factory() as s:
        begin_read(s)
        begin_write(s)
        s.add(SettingRow(key="a", value=1))
        s.commit()
    assert _count(engine) == 1


def test_reads_without_a_transaction_see_each_commit(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory() as reader:
        begin_read(reader)
        assert reader.scalar(select(func.count()).select_from(SettingRow)) == 0
        with factory() as writer:
            begin_write(writer)
            writer.add(SettingRow(key="a", value=1))
            writer.commit()
        # no snapshot is held between statements: the next one sees the commit
        assert reader.scalar(select(func.count()).select_from(SettingRow)) == 1
