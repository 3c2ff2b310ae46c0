"""Identity, auth and settings bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field, StrictBool

from hostimage.api.schemas.common import Strict

Name = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f/]+$")


class LoginBody(Strict):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)
    domain: str | None = None
    project_id: str | None = None


class SwitchBody(Strict):
    project_id: str


class UserRef(BaseModel):
    id: str
    name: str
    domain_id: str


class ProjectRef(BaseModel):
    id: str
    name: str | None
    domain_id: str | None


class RoleOut(BaseModel):
    role: str
    domain_id: str | None
    project_id: str | None


class WhoAmI(BaseModel):
    user: UserRef
    project: ProjectRef | None
    roles: list[RoleOut]
    highest_view: str
    views: list[str]


class TokenOut(WhoAmI):
    token: str
    expires_at: datetime


class DomainIn(Strict):
    name: str = Name
    description: str = Field(default="", max_length=1024)


class DomainOut(BaseModel):
    id: str
    name: str
    description: str
    created_at: datetime


class ProjectIn(Strict):
    name: str = Name
    domain_id: str
    description: str = Field(default="", max_length=1024)


class ProjectOut(BaseModel):
    id: str
    name: str
    domain_id: str
    domain_name: str | None
    description: str
    created_at: datetime


class UserIn(Strict):
    name: str = Name
    domain_id: str
    password: str = Field(min_length=6, max_length=1024)
    display_name: str = Field(default="", max_length=256)
    email: str = Field(default="", max_length=256)


class UserOut(BaseModel):
    id: str
    name: str
    domain_id: str
    display_name: str
    email: str
    created_at: datetime


class AssignmentIn(Strict):
    user_id: str
    role: Literal["sysadmin", "domainadmin", "member", "viewer"]
    scope: Literal["system", "domain", "project"]
    domain_id: str | None = None
    project_id: str | None = None


class AssignmentOut(BaseModel):
    id: str
    user_id: str
    role: str
    scope: str
    domain_id: str | None
    project_id: str | None
    created_at: datetime


T = TypeVar("T")


class Items(BaseModel, Generic[T]):
    items: list[T]


class SettingsOut(BaseModel):
    three_level_permissions: bool
    target_formats: list[str]
    max_virtual_size_gb: float = Field(description="Largest virtual disk size of an image, GiB.")
    max_upload_size_gb: float = Field(description="Largest upload, GiB.")


class SettingsPatch(Strict):
    three_level_permissions: StrictBool | None = None
    target_formats: list[str] | None = None
    max_virtual_size_gb: float | None = Field(default=None, gt=0, le=1 << 30, strict=True)
    max_upload_size_gb: float | None = Field(default=None, gt=0, le=1 << 30, strict=True)
