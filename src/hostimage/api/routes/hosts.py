"""``/hosts``: compute hosts — the built-in inventory and libvirt hosts (SPEC §9.2)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from hostimage.api.deps import Run
from hostimage.api.schemas.common import Offset
from hostimage.api.schemas.hosts import HostIn, HostList, HostOut, HostPatch, SyncAccepted
from hostimage.services import hosts

router = APIRouter(prefix="/hosts", tags=["hosts"])


@router.get("", response_model=HostList)
async def list_hosts(
    run: Run,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    return await run(hosts.list_hosts, limit, offset)


@router.post("", response_model=HostOut, status_code=201)
async def add(body: HostIn, run: Run) -> dict[str, Any]:
    spec = hosts.HostSpec(
        name=body.name,
        uri=body.uri,
        project_id=body.project_id,
        storage_pool=body.storage_pool,
        network=body.network,
        network_set=True,
    )
    return await run(hosts.add_host, spec)


@router.get("/{host_id}", response_model=HostOut)
async def get(host_id: str, run: Run) -> dict[str, Any]:
    return await run(hosts.get_host, host_id)


@router.patch("/{host_id}", response_model=HostOut)
async def patch(host_id: str, body: HostPatch, run: Run) -> dict[str, Any]:
    given = body.model_dump(exclude_unset=True)
    spec = hosts.HostSpec(
        name=given.get("name"),
        uri=given.get("uri"),
        project_id=given.get("project_id"),
        storage_pool=given.get("storage_pool"),
        network=given.get("network"),
        network_set="network" in given,
    )
    return await run(hosts.update_host, host_id, spec)


@router.delete("/{host_id}", status_code=204)
async def delete(host_id: str, run: Run) -> Response:
    await run(hosts.delete_host, host_id)
    return Response(status_code=204)


@router.post("/{host_id}/sync", response_model=SyncAccepted, status_code=202)
async def sync(host_id: str, run: Run) -> dict[str, Any]:
    return await run(hosts.request_sync, host_id)
