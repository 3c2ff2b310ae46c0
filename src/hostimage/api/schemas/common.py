"""Shapes shared by several resources."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so typos fail loudly (422)."""

    model_config = ConfigDict(extra="forbid")


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
