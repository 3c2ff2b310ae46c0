"""``/images``: system images — create, streamed upload, list, details, edit, delete, download."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hostimage.api.deps import CtxDep, Run, SessionDep, SettingsDep, StorageDep
from hostimage.api.downloads import content_disposition, primed
from hostimage.api.schemas.common import Offset
from hostimage.api.schemas.images import (
    ImageDeleteAccepted,
    ImageIn,
    ImageList,
    ImageOut,
    ImagePatch,
)
from hostimage.domain.formats import DiskFormat
from hostimage.domain.tenancy import View
from hostimage.errors import RangeNotSatisfiable
from hostimage.services import images

router = APIRouter(prefix="/images", tags=["images"])


@router.get("", response_model=ImageList)
async def list_images(
    run: Run,
    scope: View = View.PROJECT,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Offset = 0,
    name: str | None = None,
    status: str | None = None,
    disk_format: str | None = None,
    standalone: bool | None = None,
) -> dict[str, Any]:
    q = images.ImageListQuery(
        view=scope,
        limit=limit,
        offset=offset,
        name=name,
        status=status,
        disk_format=disk_format,
        standalone=standalone,
    )
    return await run(images.list_images, q)


@router.post("", response_model=ImageOut, status_code=201)
async def create(body: ImageIn, run: Run) -> dict[str, Any]:
    return await run(
        images.create_image,
        body.name,
        body.disk_format.value,
        description=body.description,
        os_type=body.os_type.value if body.os_type else None,
        project_id=body.project_id,
    )


@router.get("/{image_id}", response_model=ImageOut)
async def get(image_id: str, run: Run) -> dict[str, Any]:
    return await run(images.get_image, image_id)


@router.patch("/{image_id}", response_model=ImageOut)
async def patch(image_id: str, body: ImagePatch, run: Run) -> dict[str, Any]:
    return await run(
        images.update_image, image_id, body.model_dump(exclude_unset=True, mode="json")
    )


@router.delete("/{image_id}", response_model=ImageDeleteAccepted, status_code=202)
async def delete(image_id: str, run: Run) -> dict[str, Any]:
    return await run(images.delete_image, image_id)


def _bridge(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    """Read the async request body from the worker thread the upload runs in."""

    async def next_chunk() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    while True:
        chunk = anyio.from_thread.run(next_chunk)
        if chunk is None:
            return
        if chunk:
            yield chunk


@router.put(
    "/{image_id}/data",
    response_model=ImageOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload(
    image_id: str,
    request: Request,
    session: SessionDep,
    ctx: CtxDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Stream the image's bytes (any size up to the limit); SHA-256 and format checked."""
    result: dict[str, Any] = await run_in_threadpool(
        images.upload_data,
        session,
        storage,
        ctx,
        image_id,
        _bridge(request.stream()),
        upload_holder(),
    )
    return result


def upload_holder() -> str:
    """Who holds an upload's task: this API process (shown as the task's worker)."""
    return f"api:{socket.gethostname()}:{os.getpid()}"


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None) -> tuple[int, int | None] | None:
    """``bytes=a-b`` → (a, b); ``bytes=a-`` → (a, None); ``bytes=-n`` → (-n, None)."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise RangeNotSatisfiable("Only a single bytes=start-end range is supported.")
    if not m.group(1):
        return (-int(m.group(2)), None)
    return (int(m.group(1)), int(m.group(2)) if m.group(2) else None)


@router.get(
    "/{image_id}/data",
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "Range"}},
)
async def download(
    image_id: str,
    session: SessionDep,
    ctx: CtxDep,
    storage: StorageDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    format: DiskFormat | None = None,
) -> StreamingResponse:
    """The image's bytes (or its copy in ``format``), whole or one range (206), with its
    checksum as ETag."""
    byte_range = parse_range(range_header)
    fmt = format.value if format else None
    dl = await run_in_threadpool(
        images.open_download, session, storage, ctx, image_id, byte_range, fmt
    )
    name = f"{dl.image['name']}.{dl.image['disk_format']}"
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(dl.end - dl.start + 1),
        "ETag": f'"{dl.image["checksum"]}"',
        "Content-Disposition": content_disposition(name),
    }
    status = 200
    if byte_range is not None:
        status = 206
        headers["Content-Range"] = f"bytes {dl.start}-{dl.end}/{dl.size}"
    return StreamingResponse(
        await primed(dl.chunks),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )
