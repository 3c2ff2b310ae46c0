"""``/servers``: VMs of the built-in inventory and of libvirt hosts; save a host image (F1),
VMs from one (F11)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from hostimage.api.deps import Run
from hostimage.api.schemas.common import Offset
from hostimage.api.schemas.host_images import ChangeProjectBody
from hostimage.api.schemas.servers import (
    SaveAccepted,
    SaveBody,
    ServerCreated,
    ServerDeleteAccepted,
    ServerIn,
    ServerList,
    ServerOut,
    ServerPower,
)
from hostimage.domain import identity
from hostimage.domain.tenancy import View
from hostimage.imaging.passwords import sha512_crypt
from hostimage.services import servers

router = APIRouter(prefix="/servers", tags=["servers"])


@router.get("", response_model=ServerList)
async def list_servers(
    run: Run,
    scope: View = View.PROJECT,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Offset = 0,
    name: str | None = None,
    status: str | None = None,
    host_id: str | None = None,
) -> dict[str, Any]:
    return await run(servers.list_servers, scope, limit, offset, name, status, host_id)


@router.post("", response_model=ServerCreated, status_code=202)
async def create(body: ServerIn, run: Run) -> dict[str, Any]:
    # Only the hash is ever stored; the password itself stops here. Hashing is CPU work:
    # off the event loop.
    password_hash = await run_in_threadpool(sha512_crypt, body.password) if body.password else None
    hostname = body.hostname
    if hostname is None and not identity.valid_hostname(body.name):
        # The guest is named after the VM: a display name that is no hostname is made one
        # here, rather than refused when the identity is written.
        hostname = identity.hostname_from(body.name)
    spec = servers.ServerSpec(
        name=body.name,
        project_id=body.project_id,
        disks=tuple(servers.DiskSpec(d.size_mb, d.image_id) for d in body.disks),
        host_image_id=body.host_image_id,
        hostname=hostname,
        login_user=body.login_user,
        password_hash=password_hash,
        ssh_public_key=body.ssh_public_key,
        os_type=body.os_type.value if body.os_type else None,
        network=body.network.model_dump() if body.network else None,
        host_id=body.host_id,
        start=body.start,
        vcpus=body.vcpus,
        memory_mb=body.memory_mb,
    )
    return await run(servers.create_server, spec)


@router.get("/{server_id}", response_model=ServerOut)
async def get(server_id: str, run: Run) -> dict[str, Any]:
    return await run(servers.get_server, server_id)


@router.delete("/{server_id}", response_model=ServerDeleteAccepted, status_code=202)
async def delete(server_id: str, run: Run) -> dict[str, Any]:
    return await run(servers.delete_server, server_id)


@router.post("/{server_id}/start", response_model=ServerPower)
async def start(server_id: str, run: Run) -> dict[str, Any]:
    return await run(servers.set_power, server_id, start=True)


@router.post("/{server_id}/stop", response_model=ServerPower)
async def stop(server_id: str, run: Run) -> dict[str, Any]:
    return await run(servers.set_power, server_id, start=False)


@router.post("/{server_id}/change-project", response_model=ServerOut)
async def change_project(server_id: str, body: ChangeProjectBody, run: Run) -> dict[str, Any]:
    return await run(servers.change_project, server_id, body.project_id)


@router.post("/{server_id}/save-host-image", response_model=SaveAccepted, status_code=202)
async def save_host_image(server_id: str, body: SaveBody, run: Run) -> dict[str, Any]:
    return await run(
        servers.save_host_image,
        server_id,
        body.name,
        description=body.description,
        protected=body.protected,
        auto_start=body.auto_start,
    )
