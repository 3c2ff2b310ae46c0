"""Engine and session factory for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from hostimage.db import deferred, revision
from hostimage.errors import Busy


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


WRITE_BEGIN = "BEGIN IMMEDIATE"
WRITER_WAIT_S = 30.0
_HOLDS_WRITER = "holds_sqlite_writer"


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Autocommit at the driver level so that we issue BEGIN ourselves (see _begin).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # The threads of one process queue for SQLite's single write lock here, in order,
        # instead of polling it through the busy handler (whose growing sleeps made a
        # write's p99 under 8 concurrent writers 0.8-1.6 s). Other processes still meet
        # at the busy handler.
        writer = threading.Lock()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # A write use case asks for BEGIN IMMEDIATE so that its read-then-write cannot
            # deadlock against another writer; plain reads stay concurrent (WAL).
            options = conn.get_execution_options()
            if options.get("isolation_level") == "AUTOCOMMIT":
                return
            statement = options.get("sqlite_begin", "BEGIN")
            if statement != WRITE_BEGIN:
                conn.exec_driver_sql(statement)
                return
            if not writer.acquire(timeout=WRITER_WAIT_S):
                raise Busy(
                    f"No SQLite write slot within {WRITER_WAIT_S:.0f} s; retry in a moment.",
                    headers={"Retry-After": "1"},
                )
            conn.info[_HOLDS_WRITER] = True
            try:
                conn.exec_driver_sql(statement)
            except BaseException:
                _release(conn)
                raise

        def _release(conn: Any) -> None:
            if conn.info.pop(_HOLDS_WRITER, False):
                writer.release()

        # Released as the transaction ends, just before SQLite's own lock is: the next
        # writer may wait a moment in the busy handler, never for long.
        event.listen(engine, "commit", _release)
        event.listen(engine, "rollback", _release)
        return engine
    # Connections are recycled instead of pinged: a ping is a round trip on every checkout.
    # JIT compilation is off: our queries are short, and the planner's cost estimates for a
    # count over a large catalogue switch it on, adding ~40 ms of compile time to a 10 ms query.
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=20,
        pool_recycle=1800,
        connect_args={"options": "-c jit=off"},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for use cases; their commits send the rows queued with
    :func:`hostimage.db.deferred.insert_on_commit` and bump the catalogue revision when they
    changed host images (see :mod:`hostimage.db.revision`)."""
    factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
    revision.track(factory)
    deferred.track(factory)
    event.listen(factory, "before_flush", _refuse_flush_while_reading)
    event.listen(factory, "do_orm_execute", _refuse_dml_while_reading)
    return factory


_READING = "autocommit_read"


class WriteWithoutTransaction(RuntimeError):
    """A use case wrote in a session started with :func:`begin_read` without calling
    :func:`begin_write` first: its statements would have committed one by one."""


def begin_read(session: Session) -> None:
    """Run the session's statements without a transaction until :func:`begin_write`.

    A request that only reads then costs no BEGIN and no ROLLBACK round trip; each
    statement sees the data committed when it starts, as in a READ COMMITTED transaction.
    Call before the session's first statement. Writing before :func:`begin_write` raises
    :class:`WriteWithoutTransaction` instead of committing statement by statement.
    """
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    session.info[_READING] = True


def _refuse_flush_while_reading(session: Session, *_: Any) -> None:
    if session.info.get(_READING) and (session.new or session.dirty or session.deleted):
        raise WriteWithoutTransaction("begin_write() must come before the first change.")


def _refuse_dml_while_reading(state: ORMExecuteState) -> None:
    if state.session.info.get(_READING) and (state.is_insert or state.is_update or state.is_delete):
        raise WriteWithoutTransaction("begin_write() must come before the first change.")


def begin_write(session: Session) -> None:
    """Make the session's transaction a write transaction.

    Call first in a use case that will write. After :func:`begin_read` (every API request)
    the autocommit connection is handed back and a transaction begins. Otherwise SQLite
    must take its write lock up front (``BEGIN IMMEDIATE``), so a read transaction already
    open is ended first, while PostgreSQL goes on in the open transaction (row locks are
    taken with ``FOR UPDATE``, every statement reads committed data).
    """
    if session.info.get(_READING):
        session.commit()  # hands back the autocommit connection (the guard saw no changes)
        del session.info[_READING]
    elif session.in_transaction():
        if session.get_bind().dialect.name != "sqlite":
            return
        session.commit()  # ends the read transaction of authentication; nothing is pending
    session.connection(execution_options={"sqlite_begin": WRITE_BEGIN})


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that rolls back on error and is always closed."""
    session = factory()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
