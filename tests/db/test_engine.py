"""SQLite write transactions: the threads of one process queue for the write lock in order,
and the queue is released however a transaction ends (commit, rollback, error, close)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hostimage.db.engine import begin_write, make_engine, make_session_factory
from hostimage.db.migrate import upgrade
from hostimage.db.models import SettingRow


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    upgrade(url)
    return url


def test_concurrent_writers_in_one_process_all_commit(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    threads, per_thread = 8, 25
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(per_thread):
                with factory() as s:
                    begin_write(s)
                    # read-then-write inside the write transaction: a lost update would show
                    row = s.get(SettingRow, "counter")
                    if row is None:
                        s.add(SettingRow(key="counter", value=1))
                    else:
                        row.value = int(row.value) + 1
                    s.add(SettingRow(key=f"w{n}-{i}", value=i))
                    s.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    started = time.monotonic()
    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not errors, errors
    with factory() as s:
        counter = s.get(SettingRow, "counter")
        assert counter is not None and counter.value == threads * per_thread
        assert len(s.scalars(select(SettingRow.key)).all()) == 1 + threads * per_thread
    assert time.monotonic() - started < 120
    engine.dispose()


def test_the_write_slot_is_released_however_a_transaction_ends(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    with factory() as s:  # rolled back
        begin_write(s)
        s.add(SettingRow(key="a", value=1))
        s.flush()
        s.rollback()
    with factory() as s:  # closed with the transaction open
        begin_write(s)
        s.add(SettingRow(key="b", value=1))
        s.flush()
    with pytest.raises(IntegrityError), factory() as s:  # failed statement, then closed
        begin_write(s)
        s.add(SettingRow(key="c", value=1))
        s.add(SettingRow(key="c", value=2))
        s.flush()
    done = threading.Event()

    def late_writer() -> None:
        with factory() as s:
            begin_write(s)
            s.add(SettingRow(key="d", value=1))
            s.commit()
        done.set()

    t = threading.Thread(target=late_writer)
    t.start()
    assert done.wait(timeout=10), "a write slot was not released"
    t.join()
    with factory() as s:
        assert s.scalars(select(SettingRow.key)).all() == ["d"]
    engine.dispose()
