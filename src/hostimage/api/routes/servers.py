"""``/servers``: the built-in compute inventory; save a host image (F1), VMs from one (F11)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from hostimage.api.deps import CtxDep, SessionDep
from hostimage.api.schemas.servers import (
    SaveAccepted,
    SaveBody,
    ServerCreated,
    ServerDeleteAccepted,
    ServerIn,
    ServerList,
    ServerOut,
)
from hostimage.domain.tenancy import View
from hostimage.imaging.passwords import sha512_crypt
from hostimage.services import servers

router = APIRouter(prefix="/servers", tags=["servers"])


@router.get("", response_model=ServerList)
def list_servers(
    session: SessionDep,
    ctx: CtxDep,
    scope: View = View.PROJECT,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    name: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    return servers.list_servers(session, ctx, scope, limit, offset, name, status)


@router.post("", response_model=ServerCreated, status_code=202)
def create(body: ServerIn, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    spec = servers.ServerSpec(
        name=body.name,
        project_id=body.project_id,
        disks=tuple(servers.DiskSpec(d.size_mb, d.image_id) for d in body.disks),
        host_image_id=body.host_image_id,
        hostname=body.hostname,
        login_user=body.login_user,
        # Only the hash is ever stored; the password itself stops here.
        password_hash=sha512_crypt(body.password) if body.password else None,
        ssh_public_key=body.ssh_public_key,
        os_type=body.os_type.value if body.os_type else None,
    )
    return servers.create_server(session, ctx, spec)


@router.get("/{server_id}", response_model=ServerOut)
def get(server_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return servers.get_server(session, ctx, server_id)


@router.delete("/{server_id}", response_model=ServerDeleteAccepted, status_code=202)
def delete(server_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return servers.delete_server(session, ctx, server_id)


@router.post("/{server_id}/start", response_model=ServerOut)
def start(server_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return servers.set_power(session, ctx, server_id, start=True)


@router.post("/{server_id}/stop", response_model=ServerOut)
def stop(server_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return servers.set_power(session, ctx, server_id, start=False)


@router.post("/{server_id}/save-host-image", response_model=SaveAccepted, status_code=202)
def save_host_image(
    server_id: str, body: SaveBody, session: SessionDep, ctx: CtxDep
) -> dict[str, Any]:
    return servers.save_host_image(
        session,
        ctx,
        server_id,
        body.name,
        description=body.description,
        protected=body.protected,
        auto_start=body.auto_start,
    )
