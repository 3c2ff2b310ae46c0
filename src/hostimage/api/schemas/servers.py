"""Server (VM) bodies (SPEC §5 ``POST /servers`` and ``save-host-image``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictBool, field_validator, model_validator

from hostimage.api.schemas.common import Strict
from hostimage.domain import identity
from hostimage.domain.formats import OsType


class DiskIn(Strict):
    size_mb: int | None = Field(default=None, ge=1, le=16 * 1024 * 1024)
    image_id: str | None = None

    @model_validator(mode="after")
    def one_source(self) -> DiskIn:
        if (self.size_mb is None) == (self.image_id is None):
            raise ValueError("a disk takes exactly one of size_mb or image_id")
        return self


class NetworkIn(Strict):
    """A static address for the new VM's first interface (IPv4 or IPv6)."""

    address: str = Field(max_length=64, description="CIDR, e.g. 192.0.2.10/24.")
    gateway: str | None = Field(default=None, max_length=64)
    dns: list[str] = Field(default_factory=list, max_length=3)


class ServerIn(Strict):
    """A VM to build. The guest identity is checked with the rules the build applies
    (:mod:`hostimage.domain.identity`), so what is accepted here is never refused later."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f/]+$")
    project_id: str | None = None
    disks: list[DiskIn] = Field(default_factory=list, max_length=32)
    host_image_id: str | None = None
    hostname: str | None = Field(
        default=None,
        max_length=identity.HOSTNAME_MAX_LENGTH,
        pattern=identity.HOSTNAME_PATTERN,
        description="The guest's hostname; made from the name when not given.",
    )
    login_user: str | None = Field(default=None, max_length=32, pattern=identity.LOGIN_USER_PATTERN)
    password: str | None = Field(
        default=None,
        min_length=8,
        max_length=256,
        description="Set for the login user (stored only as a SHA-512 crypt hash); "
        "no line breaks or NUL.",
    )
    ssh_public_key: str | None = Field(
        default=None,
        max_length=16384,
        description="One OpenSSH public-key line (type, base64 key, optional comment).",
        json_schema_extra={"pattern": identity.SSH_KEY_PATTERN},
    )
    os_type: OsType | None = None
    network: NetworkIn | None = Field(
        default=None,
        description="A static address for the first interface; without it the image's "
        "network configs are reset to DHCP.",
    )
    host_id: str = Field(
        default="builtin",
        min_length=1,
        max_length=32,
        description="Where the VM is created: builtin, or a libvirt host's id.",
    )
    start: StrictBool = Field(default=False, description="Start the VM once it is created.")
    vcpus: int = Field(default=1, ge=1, le=256, description="libvirt hosts: virtual CPUs.")
    memory_mb: int = Field(
        default=1024, ge=64, le=4 * 1024 * 1024, description="libvirt hosts: memory in MiB."
    )

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is not None and not identity.valid_hostname(value):
            raise ValueError("not a valid hostname (RFC 1123 labels, at most 253 characters)")
        return value

    @field_validator("login_user")
    @classmethod
    def _login_user(cls, value: str | None) -> str | None:
        if value is not None and not identity.valid_login_user(value):
            raise ValueError("not a valid Linux login name")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        if value is not None and not identity.valid_guest_password(value):
            raise ValueError("a password cannot contain line breaks or NUL characters")
        return value

    @field_validator("ssh_public_key")
    @classmethod
    def _ssh_key(cls, value: str | None) -> str | None:
        if value is not None and not identity.valid_ssh_public_key(value):
            raise ValueError("not an OpenSSH public key line (type, base64 key, comment)")
        return value


class ServerDiskOut(BaseModel):
    index: int
    target: str | None = Field(description="The disk's target on its domain (vda, sdb…).")
    size: int = Field(description="Virtual size in bytes.")
    format: str
    pool: str | None
    volume: str | None
    source_image_id: str | None


class ServerOut(BaseModel):
    id: str
    name: str
    host_id: str
    external_id: str | None = Field(description="The domain's UUID on a libvirt host.")
    created_here: bool = Field(
        description="False for a domain found on a host: the service never changes or deletes it."
    )
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
    task_id: str | None = Field(
        description="The task removing its disks; null when nothing is left to remove "
        "(a server whose domain is gone)."
    )


class ServerPower(ServerOut):
    task_id: str | None = None


class FormatBody(Strict):
    format: str


class ConvertAccepted(BaseModel):
    task_id: str
    host_image_id: str
    format: str
