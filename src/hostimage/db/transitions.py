"""Status writes as compare-and-set through each kind's transition table (SPEC §9.1).

Two ways to change a status, both checked against the kind's :class:`Machine`:

- on an ORM object: assign ``obj.status``. The assignment is checked at once (an illegal
  change raises :class:`IllegalTransition`), and the flush's ``UPDATE`` carries
  ``WHERE status = <the status read>``: a row whose status another writer changed meanwhile
  is not overwritten — the flush raises ``StaleDataError`` instead;
- on rows by statement: :func:`cas`, ``UPDATE … WHERE status IN (<statuses allowed to reach
  the new one>)``, which answers how many rows changed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, event, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from hostimage.db.base import Base, utcnow
from hostimage.domain.status import IllegalTransition, Machine

M = TypeVar("M", bound=type[Base])

MACHINES: dict[type[Base], Machine[Any]] = {}

# Rows changed per statement: far below every database's limit on bound parameters.
CHUNK = 500


def compare_and_set(status: Any) -> dict[str, Any]:
    """``__mapper_args__`` that make every flush of the model compare its ``status`` column:
    the ``UPDATE`` (or ``DELETE``) of a row carries ``WHERE status = <the status read>``."""
    return {"version_id_col": status, "version_id_generator": False}


def guarded(machine: Machine[Any]) -> Callable[[M], M]:
    """Class decorator for a model whose ``__mapper_args__`` are :func:`compare_and_set`:
    assigning ``status`` on its objects is checked against ``machine``."""

    def decorate(model: M) -> M:
        mapper: Any = sa_inspect(model)
        if mapper.version_id_col is None or mapper.version_id_col.name != "status":
            raise TypeError(f"{model.__name__} must compare its status on flush")
        MACHINES[model] = machine
        event.listen(
            model.status,  # type: ignore[attr-defined]
            "set",
            _checker(machine),
            retval=True,
            active_history=True,
        )
        return model

    return decorate


def machine_of(model: type[Base]) -> Machine[Any]:
    """The transition table of ``model``'s statuses."""
    return MACHINES[model]


def _checker(machine: Machine[Any]) -> Callable[[Any, Any, Any, Any], str]:
    def check(_target: Any, value: Any, old: Any, _initiator: Any) -> str:
        new: str = machine.parse(str(value)).value
        # A new object has no status yet (NO_VALUE / NEVER_SET / None): any start is fine.
        if isinstance(old, str):
            machine.check(old, new)
        return new

    return check


def cas(
    session: Session,
    model: type[Base],
    ids: Sequence[str],
    new: StrEnum | str,
    *,
    expected: Collection[StrEnum | str] | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    touch: bool = True,
    **values: object,
) -> int:
    """Move the rows ``ids`` of ``model`` to status ``new`` — only those whose status may
    change to it (and is among ``expected``, when given) — with the other column
    ``values``; returns how many rows changed.

    Raises :class:`IllegalTransition` when an ``expected`` status may not reach ``new``.
    """
    machine = MACHINES[model]
    target = machine.parse(str(new))
    sources = machine.sources(target.value)
    if expected is not None:
        wanted = {machine.parse(str(s)) for s in expected}
        illegal = sorted(s.value for s in wanted - sources)
        if illegal:
            raise IllegalTransition(
                f"A {machine.kind} cannot go from {', '.join(illegal)} to '{target.value}'."
            )
        sources = frozenset(wanted)
    if touch and hasattr(model, "updated_at"):
        values.setdefault("updated_at", utcnow())
    table: Any = model.__table__
    changed = 0
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        result: Any = session.execute(
            update(model)
            .where(
                table.c.id.in_(chunk),
                table.c.status.in_([s.value for s in sources]),
                *where,
            )
            .values(status=target.value, **values)
            .execution_options(synchronize_session="fetch")
        )
        changed += int(result.rowcount or 0)
    return changed
