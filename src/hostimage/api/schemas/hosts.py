"""Compute host bodies (SPEC §9.2 ``/hosts``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from hostimage.api.schemas.common import Strict

_NAME = r"^[^\x00-\x1f/]+$"
# libvirt pool and network names: no slashes, no control characters.
_LIBVIRT_NAME = r"^[^\x00-\x1f/]+$"


class HostIn(Strict):
    name: str = Field(min_length=1, max_length=128, pattern=_NAME)
    driver: Literal["libvirt"] = "libvirt"
    uri: str = Field(
        min_length=3,
        max_length=1024,
        description="A libvirt URI: qemu:///system, qemu+ssh://user@host/system, "
        "qemu+tcp://host/system…",
    )
    project_id: str = Field(
        min_length=1, max_length=32, description="Owner of the domains found on the host."
    )
    storage_pool: str = Field(
        min_length=1,
        max_length=128,
        pattern=_LIBVIRT_NAME,
        description="The pool new VMs' volumes are created in.",
    )
    network: str | None = Field(
        default=None,
        max_length=128,
        pattern=_LIBVIRT_NAME,
        description="The libvirt network new VMs' NIC joins; none gives user-mode networking.",
    )


class HostPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=_NAME)
    uri: str | None = Field(default=None, min_length=3, max_length=1024)
    project_id: str | None = Field(default=None, min_length=1, max_length=32)
    storage_pool: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=_LIBVIRT_NAME
    )
    network: str | None = Field(default=None, max_length=128, pattern=_LIBVIRT_NAME)


class HostVersions(BaseModel):
    libvirt: str | None = None
    hypervisor: str | None = None


class HostOut(BaseModel):
    """A host. Users other than system administrators see only ``id``, ``name``,
    ``driver`` and ``status`` (the rest is null)."""

    id: str
    name: str
    driver: str
    uri: str | None
    domain_id: str | None
    project_id: str | None
    storage_pool: str | None
    network: str | None
    status: str
    status_reason: str | None
    versions: HostVersions | None
    servers: int | None
    synced_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


class HostList(BaseModel):
    items: list[HostOut]
    total: int
    limit: int
    offset: int


class SyncAccepted(BaseModel):
    task_id: str
