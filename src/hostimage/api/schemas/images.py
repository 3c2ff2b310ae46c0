"""System-image and task bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from hostimage.api.schemas.common import Strict
from hostimage.domain.formats import DiskFormat, OsType


class ImageIn(Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f/]+$")
    disk_format: DiskFormat
    description: str = Field(default="", max_length=1024)
    os_type: OsType | None = None
    project_id: str | None = None


class ImagePatch(Strict):
    """Changes to an image; ``os_type`` may be cleared with null, the others not."""

    name: (
        Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f/]+$")]
        | SkipJsonSchema[None]
    ) = None
    description: Annotated[str, Field(max_length=1024)] | SkipJsonSchema[None] = None
    os_type: OsType | None = None

    @field_validator("name", "description", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class ImageOut(BaseModel):
    id: str
    name: str
    description: str
    status: str
    status_reason: str | None
    domain_id: str
    project_id: str
    share_scope: str
    disk_format: str
    size: int
    virtual_size: int
    checksum: str | None
    os_type: str | None
    host_image_id: str | None
    index: int | None
    role: str | None
    created_at: datetime
    updated_at: datetime


class ImageList(BaseModel):
    items: list[ImageOut]
    total: int
    limit: int
    offset: int


class ImageDeleteAccepted(BaseModel):
    task_id: str
    image_id: str


class TaskOut(BaseModel):
    id: str
    kind: str
    target_type: str
    target_id: str
    status: str
    progress: int
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TaskList(BaseModel):
    items: list[TaskOut]
    total: int
    limit: int
    offset: int
