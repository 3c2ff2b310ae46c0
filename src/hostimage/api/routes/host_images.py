"""``/host-images``: list, compose, details, edit, share, move, protect, delete, batch."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from hostimage.api.deps import Run
from hostimage.api.schemas.common import Offset
from hostimage.api.schemas.host_images import (
    BatchBody,
    BatchOut,
    ChangeProjectBody,
    DeleteAccepted,
    FormatList,
    HostImageCreate,
    HostImageList,
    HostImageOut,
    HostImagePatch,
    ProtectionBody,
    ShareBody,
    SubImageList,
)
from hostimage.api.schemas.servers import ConvertAccepted, FormatBody
from hostimage.domain.tenancy import View
from hostimage.services import conversions
from hostimage.services.host_images import batch, edit, lifecycle, read, share

router = APIRouter(prefix="/host-images", tags=["host-images"])


@router.get("", response_model=HostImageList)
async def list_host_images(
    run: Run,
    scope: View = View.PROJECT,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Offset = 0,
    name: str | None = None,
    status: str | None = None,
    project_id: str | None = None,
    domain_id: str | None = None,
    os_type: str | None = None,
    protected: bool | None = None,
    share_scope: Literal["none", "project", "domain", "system"] | None = None,
    is_standard: bool | None = None,
    order_by: read.OrderBy = "created_at",
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    q = read.ListQuery(
        view=scope,
        limit=limit,
        offset=offset,
        name=name,
        status=status,
        project_id=project_id,
        domain_id=domain_id,
        os_type=os_type,
        protected=protected,
        share_scope=share_scope,
        is_standard=is_standard,
        order_by=order_by,
        order=order,
    )
    return await run(read.list_host_images, q)


@router.post("", response_model=HostImageOut, status_code=201)
async def compose(body: HostImageCreate, run: Run) -> dict[str, Any]:
    attrs = body.model_dump(
        exclude={"name", "image_ids", "project_id", "generate_name"},
        exclude_none=True,
        mode="json",
    )
    return await run(
        lifecycle.compose_host_image,
        body.name,
        body.image_ids,
        project_id=body.project_id,
        generate_name=body.generate_name,
        attributes=attrs,
    )


@router.post("/batch", response_model=BatchOut)
async def run_batch(body: BatchBody, run: Run) -> dict[str, Any]:
    """Per-item results; ``params`` are validated like the single action's body (422)."""
    return await run(batch.run_batch, body.action, body.ids, _batch_params(body))


def _batch_params(body: BatchBody) -> dict[str, Any]:
    try:
        if body.action == "update":
            return HostImagePatch.model_validate(body.params).changes()
        if body.action == "share":
            return ShareBody.model_validate(body.params).model_dump()
        if body.action == "change_project":
            return ChangeProjectBody.model_validate(body.params).model_dump()
        if body.action == "set_protection":
            return ProtectionBody.model_validate(body.params).model_dump()
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", "params", *e["loc"])} for e in exc.errors()]
        ) from exc
    return {}


@router.get("/{host_image_id}", response_model=HostImageOut)
async def get_host_image(host_image_id: str, run: Run) -> dict[str, Any]:
    return await run(read.get_host_image, host_image_id)


@router.patch("/{host_image_id}", response_model=HostImageOut)
async def update(host_image_id: str, body: HostImagePatch, run: Run) -> dict[str, Any]:
    return await run(edit.update_host_image, host_image_id, body.changes())


@router.delete("/{host_image_id}", response_model=DeleteAccepted, status_code=202)
async def delete(host_image_id: str, run: Run) -> dict[str, Any]:
    return await run(lifecycle.delete_host_image, host_image_id)


@router.post("/{host_image_id}/share", response_model=HostImageOut)
async def set_share(host_image_id: str, body: ShareBody, run: Run) -> dict[str, Any]:
    return await run(
        share.share_host_image, host_image_id, body.scope, body.project_ids, body.domain_ids
    )


@router.post("/{host_image_id}/change-project", response_model=HostImageOut)
async def change_project(host_image_id: str, body: ChangeProjectBody, run: Run) -> dict[str, Any]:
    return await run(edit.change_project, host_image_id, body.project_id)


@router.post("/{host_image_id}/protection", response_model=HostImageOut)
async def protection(host_image_id: str, body: ProtectionBody, run: Run) -> dict[str, Any]:
    return await run(edit.set_protection, host_image_id, body.protected)


@router.get("/{host_image_id}/sub-images", response_model=SubImageList)
async def sub_images(host_image_id: str, run: Run) -> dict[str, Any]:
    return await run(read.list_sub_images, host_image_id)


@router.post("/{host_image_id}/formats", response_model=ConvertAccepted, status_code=202)
async def request_format(host_image_id: str, body: FormatBody, run: Run) -> dict[str, Any]:
    return await run(conversions.request_format, host_image_id, body.format)


@router.get("/{host_image_id}/formats", response_model=FormatList)
async def formats(host_image_id: str, run: Run) -> dict[str, Any]:
    return await run(read.list_formats, host_image_id)
