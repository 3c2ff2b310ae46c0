"""Rows inserted when their session commits, in one statement per table.

Some rows are written by a use case but never read back by it (operation-log entries): they
are queued on the session and sent just before its commit, inside its transaction, as one
multi-row insert per table. A use case that changes one host image then sends one plain
insert instead of an ORM flush of an object; a batch of 1,000 sends one statement.
Rows are inserted in the order they were queued; a rollback drops them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.orm import Session, sessionmaker

_QUEUE = "deferred_inserts"
_TRACKED = "sends_deferred_inserts"


def insert_on_commit(session: Session, table: Table, row: dict[str, Any]) -> None:
    """Queue ``row`` for ``table``; it is inserted when ``session`` commits (in its
    transaction), or dropped if the session rolls back first."""
    if not session.info.get(_TRACKED):
        # An untracked session would drop the rows without a word.
        raise RuntimeError("This session does not send deferred inserts (see track()).")
    queue: dict[Table, list[dict[str, Any]]] = session.info.setdefault(_QUEUE, {})
    queue.setdefault(table, []).append(row)


def send(session: Session) -> None:
    """Insert the queued rows now (commit does this itself)."""
    queue: dict[Table, list[dict[str, Any]]] | None = session.info.pop(_QUEUE, None)
    for table, rows in (queue or {}).items():
        # One row: a plain INSERT; several: one executemany, which the drivers send as
        # multi-row statements.
        session.execute(insert(table), rows[0] if len(rows) == 1 else rows)


def _after_rollback(session: Session) -> None:
    session.info.pop(_QUEUE, None)


def track(factory: sessionmaker[Session]) -> None:
    """Send queued rows before every commit of a session made by ``factory``."""
    factory.kw.setdefault("info", {})[_TRACKED] = True
    event.listen(factory, "before_commit", send)
    event.listen(factory, "after_rollback", _after_rollback)
