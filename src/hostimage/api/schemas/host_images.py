"""Host-image bodies (SPEC §5 field list)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool, field_validator
from pydantic.json_schema import SkipJsonSchema

from hostimage.api.schemas.common import Ref, Strict
from hostimage.domain.formats import BootMode, DiskDriver, NetDriver, OsType


class SubImageOut(BaseModel):
    id: str
    name: str
    index: int | None
    role: str | None
    disk_format: str
    size: int
    virtual_size: int
    checksum: str | None
    status: str
    status_reason: str | None = None
    description: str = ""
    created_at: datetime
    project_id: str


class HostImageOut(BaseModel):
    id: str
    name: str
    description: str
    status: str
    status_reason: str | None
    domain_id: str
    domain_name: str
    project_id: str
    project_name: str
    share_scope: str
    shared_project_ids: list[str]
    shared_domain_ids: list[str]
    shared_projects: list[Ref]
    shared_domains: list[Ref]
    protected: StrictBool
    is_standard: bool
    external_id: str | None
    os_type: str | None
    os_distribution: str | None
    os_version: str | None
    os_arch: str | None
    os_language: str | None
    disk_driver: str
    net_driver: str
    min_ram_mb: int
    hypervisor: str | None
    boot_mode: str | None
    disk_format: str | None
    size: int
    virtual_size: int
    min_disk_mb: int | None
    sub_image_count: int
    sub_images: list[SubImageOut]
    source_server_id: str | None
    created_at: datetime
    updated_at: datetime
    can_delete: bool
    delete_fail_reason: str | None


class HostImageList(BaseModel):
    items: list[HostImageOut]
    total: int
    limit: int
    offset: int


NAME_RULES: dict[str, Any] = {"min_length": 1, "max_length": 128, "pattern": r"^[^\x00-\x1f/]+$"}


# Fields whose columns are NOT NULL: optional in a body, but never null (a PATCH that sends
# null for one is refused with 422 rather than failing at the database). The JSON schema
# does not advertise null for them.
# (The limits sit on the non-null member: on the whole union they would reject None with a
# TypeError instead of leaving it to the validators.)
Description = Annotated[str, Field(max_length=1024)] | SkipJsonSchema[None]
MinRamMb = Annotated[int, Field(ge=0, le=16 * 1024 * 1024)] | SkipJsonSchema[None]
Name = Annotated[str, Field(**NAME_RULES)] | SkipJsonSchema[None]


class Attributes(Strict):
    """Editable attributes (F3); every field optional in a PATCH. The ``os_*``,
    ``hypervisor`` and ``boot_mode`` fields may be set to null (cleared)."""

    description: Description = None
    os_type: OsType | None = None
    os_distribution: str | None = Field(default=None, max_length=64)
    os_version: str | None = Field(default=None, max_length=64)
    os_arch: str | None = Field(default=None, max_length=32)
    os_language: str | None = Field(default=None, max_length=32)
    disk_driver: DiskDriver | SkipJsonSchema[None] = None
    net_driver: NetDriver | SkipJsonSchema[None] = None
    min_ram_mb: MinRamMb = None
    hypervisor: str | None = Field(default=None, max_length=32)
    boot_mode: BootMode | None = None


NOT_NULL = ("name", "description", "disk_driver", "net_driver", "min_ram_mb", "protected")


class HostImagePatch(Attributes):
    name: Name = None
    protected: StrictBool | SkipJsonSchema[None] = None

    @field_validator(*NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, mode="json")


class HostImageCreate(Attributes):
    name: str = Field(**NAME_RULES)
    image_ids: list[str] = Field(min_length=1, max_length=64)
    project_id: str | None = None
    protected: StrictBool = True
    generate_name: StrictBool = False


class ShareBody(Strict):
    scope: Literal["none", "project", "domain", "system"]
    project_ids: list[str] | None = None
    domain_ids: list[str] | None = None


class ChangeProjectBody(Strict):
    project_id: str


class ProtectionBody(Strict):
    protected: StrictBool


class BatchBody(Strict):
    action: Literal["share", "change_project", "set_protection", "update", "delete"]
    ids: list[str] = Field(min_length=1, max_length=1000)
    params: dict[str, Any] = Field(default_factory=dict)


class BatchError(BaseModel):
    code: str
    detail: str


class BatchResult(BaseModel):
    id: str
    ok: bool
    status: int
    error: BatchError | None
    task_id: str | None = None


class BatchOut(BaseModel):
    results: list[BatchResult]


class DeleteAccepted(BaseModel):
    task_id: str
    host_image_id: str


class SubImageList(BaseModel):
    items: list[SubImageOut]


class FormatCopyOut(BaseModel):
    sub_image_id: str
    sub_image_name: str | None = None
    index: int | None = None
    format: str
    native: StrictBool = False
    size: int | None
    checksum: str | None
    status: str
    error: str | None


class FormatList(BaseModel):
    items: list[FormatCopyOut]
