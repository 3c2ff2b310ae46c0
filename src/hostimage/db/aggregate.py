"""Rows of a correlated subquery as one JSON column, on PostgreSQL and SQLite alike.

A page of host images reads its sub-images and share targets in the same statement as the
page: one round trip instead of three, which is most of a list request's cost.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func


def json_rows(dialect: str, *columns: ColumnElement[Any]) -> ColumnElement[Any]:
    """An aggregate giving the rows as a JSON array of arrays (``columns`` in order); no rows
    give NULL or ``[]``. Read it back with :func:`rows_of`."""
    if dialect == "postgresql":
        return func.json_agg(func.json_build_array(*columns))
    return func.json_group_array(func.json_array(*columns))


def rows_of(value: Any) -> list[list[Any]]:
    """The rows of a :func:`json_rows` column (the driver gives text or parsed JSON)."""
    if value is None:
        return []
    rows: list[list[Any]] = json.loads(value) if isinstance(value, str) else value
    return rows


def timestamp_of(value: str | None) -> datetime | None:
    """A timestamp inside JSON as a UTC datetime: PostgreSQL writes ISO 8601 with an
    offset, SQLite the naive UTC text it stores."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
