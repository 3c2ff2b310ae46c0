"""Shapes shared by several resources."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, model_validator

# List offsets stop where every client language still counts exactly (2^53), far beyond
# any catalogue and well inside the databases' 64-bit integers.
OFFSET_MAX = 2**53
Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX)]
# Database row ids (64-bit).
ROW_ID_MAX = 2**63 - 1


def unstorable(value: Any, where: str = "") -> str | None:
    """Why a request value cannot be stored as text, if it cannot: a NUL character (which
    PostgreSQL refuses) or a lone surrogate (which is not UTF-8) anywhere inside it. The
    answer names where (``field.0.key: …``)."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{prefix}text cannot contain NUL characters"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{prefix}text must be valid Unicode (no lone surrogates)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = unstorable(key, where) or unstorable(item, _join(where, key))
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable(item, _join(where, index))
            if found:
                return found
    return None


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so typos fail loudly (422), and text that no
    database can store (NUL, lone surrogates)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        problem = unstorable(data)
        if problem:
            raise ValueError(problem)
        return data


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str


class TaskRef(BaseModel):
    task_id: str


class Ref(BaseModel):
    id: str
    name: str
