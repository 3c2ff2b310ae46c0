"""``/host-images``: list, compose, details, edit, share, move, protect, delete, batch."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from hostimage.api.deps import CtxDep, SessionDep
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
def list_host_images(
    session: SessionDep,
    ctx: CtxDep,
    scope: View = View.PROJECT,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    name: str | None = None,
    status: str | None = None,
    project_id: str | None = None,
    domain_id: str | None = None,
    os_type: str | None = None,
    protected: bool | None = None,
    share_scope: Literal["none", "project", "domain", "system"] | None = None,
    is_standard: bool | None = None,
    order_by: Literal[
        "name",
        "created_at",
        "updated_at",
        "size",
        "status",
        "os_type",
        "disk_format",
        "share_scope",
    ] = "created_at",
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
    return read.list_host_images(session, ctx, q)


@router.post("", response_model=HostImageOut, status_code=201)
def compose(body: HostImageCreate, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    attrs = body.model_dump(
        exclude={"name", "image_ids", "project_id", "generate_name"},
        exclude_none=True,
        mode="json",
    )
    return lifecycle.compose_host_image(
        session,
        ctx,
        body.name,
        body.image_ids,
        project_id=body.project_id,
        generate_name=body.generate_name,
        attributes=attrs,
    )


@router.post("/batch", response_model=BatchOut)
def run_batch(body: BatchBody, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    """Per-item results; ``params`` are validated like the single action's body (422)."""
    return batch.run_batch(session, ctx, body.action, body.ids, _batch_params(body))


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
def get_host_image(host_image_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return read.get_host_image(session, ctx, host_image_id)


@router.patch("/{host_image_id}", response_model=HostImageOut)
def update(
    host_image_id: str, body: HostImagePatch, session: SessionDep, ctx: CtxDep
) -> dict[str, Any]:
    return edit.update_host_image(session, ctx, host_image_id, body.changes())


@router.delete("/{host_image_id}", response_model=DeleteAccepted, status_code=202)
def delete(host_image_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return lifecycle.delete_host_image(session, ctx, host_image_id)


@router.post("/{host_image_id}/share", response_model=HostImageOut)
def set_share(
    host_image_id: str, body: ShareBody, session: SessionDep, ctx: CtxDep
) -> dict[str, Any]:
    return share.share_host_image(
        session, ctx, host_image_id, body.scope, body.project_ids, body.domain_ids
    )


@router.post("/{host_image_id}/change-project", response_model=HostImageOut)
def change_project(
    host_image_id: str, body: ChangeProjectBody, session: SessionDep, ctx: CtxDep
) -> dict[str, Any]:
    return edit.change_project(session, ctx, host_image_id, body.project_id)


@router.post("/{host_image_id}/protection", response_model=HostImageOut)
def protection(
    host_image_id: str, body: ProtectionBody, session: SessionDep, ctx: CtxDep
) -> dict[str, Any]:
    return edit.set_protection(session, ctx, host_image_id, body.protected)


@router.get("/{host_image_id}/sub-images", response_model=SubImageList)
def sub_images(host_image_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return read.list_sub_images(session, ctx, host_image_id)


@router.post("/{host_image_id}/formats", response_model=ConvertAccepted, status_code=202)
def request_format(
    host_image_id: str, body: FormatBody, session: SessionDep, ctx: CtxDep
) -> dict[str, Any]:
    return conversions.request_format(session, ctx, host_image_id, body.format)


@router.get("/{host_image_id}/formats", response_model=FormatList)
def formats(host_image_id: str, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return read.list_formats(session, ctx, host_image_id)
