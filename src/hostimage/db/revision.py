"""Which committed change the catalogue is at, so that list totals can be cached exactly.

Every session notes whether it changed a host-image row (ORM flush or a bulk statement);
after such a session commits, the revision is bumped in its own short statement. A count
taken at revision ``r`` (read in or before the count's snapshot) is valid while the revision
is still ``r``: a writer bumps only after its commit, so any change a cached count misses is
followed by a bump. Bumping after commit (not inside the transaction) keeps a single counter
from serializing writers.

PostgreSQL keeps the revision in a sequence: ``nextval`` is not transactional and needs no
WAL flush of its own, so the bump costs one round trip and no fsync. SQLite, whose writers
are serialized anyway, keeps it in a one-row table. Both start at a random value (migration
0004), so a process serving several databases never takes one's revision for another's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Engine, event, literal_column, text
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker

from hostimage.db.base import table_of
from hostimage.db.models import HostImage

_CHANGED = "catalogue_changed"
_HOST_IMAGES = table_of(HostImage)

_READ = {
    "postgresql": "(SELECT last_value FROM catalogue_revision_seq)",
    "sqlite": "(SELECT revision FROM catalogue_revision WHERE id = 1)",
}
_BUMP = {
    "postgresql": "SELECT nextval('catalogue_revision_seq')",
    "sqlite": "UPDATE catalogue_revision SET revision = revision + 1 WHERE id = 1",
}


def current_for(dialect: str) -> ColumnElement[int]:
    """The revision as a scalar subquery on a dialect (``postgresql``, ``sqlite``): add it as
    a column to a query to read it in the same round trip (and snapshot) as the rows."""
    return literal_column(_READ[dialect], BigInteger())


def read(session: Session) -> int:
    """The revision now."""
    return int(session.execute(text(_READ[session.get_bind().dialect.name][1:-1])).scalar_one())


def bump(conn: Connection) -> None:
    """Move the revision on, for a change to host images made outside the service's sessions
    (a migration, a manual fix); the sessions do it themselves."""
    conn.execute(text(_BUMP[conn.dialect.name]))


def _after_flush(session: Session, flush_context: UOWTransaction) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, HostImage):
            session.info[_CHANGED] = True
            return


def _do_orm_execute(state: ORMExecuteState) -> None:
    writes = state.is_update or state.is_delete or state.is_insert
    # By the statement's table, not its mapper: a statement on the table itself has none
    # (and an ORM statement's table is an annotated copy, equal only by name).
    table = getattr(state.statement, "table", None)
    if writes and getattr(table, "name", None) == _HOST_IMAGES.name:
        state.session.info[_CHANGED] = True


def _after_commit(session: Session) -> None:
    if not session.info.pop(_CHANGED, False):
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    # A fresh autocommit statement: the session's own transaction has ended.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        bump(conn)


def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)


def track(factory: sessionmaker[Session]) -> None:
    """Bump the revision after every commit of a session made by ``factory`` that changed
    host images."""
    listeners: list[tuple[str, Any]] = [
        ("after_flush", _after_flush),
        ("do_orm_execute", _do_orm_execute),
        ("after_commit", _after_commit),
        ("after_rollback", _after_rollback),
    ]
    for name, fn in listeners:
        event.listen(factory, name, fn)
