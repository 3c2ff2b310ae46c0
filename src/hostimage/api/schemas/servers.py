"""Server (VM) bodies (SPEC §5 ``POST /servers`` and ``save-host-image``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictBool, model_validator

from hostimage.api.schemas.common import Strict
from hostimage.domain.formats import OsType

HOSTNAME = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"


class DiskIn(Strict):
    size_mb: int | None = Field(default=None, ge=1, le=16 * 1024 * 1024)
    image_id: str | None = None

    @model_validator(mode="after")
    def one_source(self) -> DiskIn:
        if (self.size_mb is None) == (self.image_id is None):
            raise ValueError("a disk takes exactly one of size_mb or image_id")
        return self


class ServerIn(Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f/]+$")
    project_id: str | None = None
    disks: list[DiskIn] = Field(default_factory=list, max_length=32)
    host_image_id: str | None = None
    hostname: str | None = Field(default=None, pattern=HOSTNAME)
    login_user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    password: str | None = Field(default=None, min_length=8, max_length=256)
    ssh_public_key: str | None = Field(
        default=None, max_length=16384, pattern=r"^(ssh|ecdsa)-[A-Za-z0-9-]+ [A-Za-z0-9+/=]+"
    )
    os_type: OsType | None = None


class ServerDiskOut(BaseModel):
    index: int
    size: int
    format: str
    source_image_id: str | None


class ServerOut(BaseModel):
    id: str
    name: str
    status: str
    status_reason: str | None
    domain_id: str
    project_id: str
    os_type: str | None
    hostname: str | None
    login_user: str | None
    disk_driver: str | None
    net_driver: str | None
    host_image_id: str | None
    disks: list[ServerDiskOut]
    created_at: datetime
    updated_at: datetime


class ServerCreated(ServerOut):
    task_id: str


class ServerList(BaseModel):
    items: list[ServerOut]
    total: int
    limit: int
    offset: int


class SaveBody(Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f/]+$")
    description: str = Field(default="", max_length=1024)
    protected: StrictBool = True
    auto_start: StrictBool = False


class SaveAccepted(BaseModel):
    task_id: str
    host_image_id: str


class ServerDeleteAccepted(BaseModel):
    task_id: str


class FormatBody(Strict):
    format: str


class ConvertAccepted(BaseModel):
    task_id: str
    host_image_id: str
    format: str
