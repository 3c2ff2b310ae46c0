"""Operation log: a host image's tab, its export, all visible entries, one entry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from hostimage.api.deps import CtxDep, Run, SessionDep
from hostimage.api.downloads import content_disposition, primed
from hostimage.api.schemas.common import ROW_ID_MAX
from hostimage.api.schemas.logs import LogEntryOut, LogPage
from hostimage.db.engine import session_scope
from hostimage.services import logs, oplog

router = APIRouter(tags=["logs"])

Limit = Annotated[int, Query(ge=1, le=1000)]


def _query(
    since: datetime | None,
    until: datetime | None,
    action: str | None,
    success: bool | None,
    obj_type: str | None = None,
    obj_id: str | None = None,
) -> oplog.LogQuery:
    return oplog.LogQuery(
        since=since, until=until, action=action, success=success, obj_type=obj_type, obj_id=obj_id
    )


@router.get("/host-images/{host_image_id}/logs", response_model=LogPage)
async def host_image_logs(
    host_image_id: str,
    run: Run,
    limit: Limit = 20,
    marker: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    success: bool | None = None,
) -> dict[str, Any]:
    q = _query(since, until, action, success)
    return await run(logs.host_image_logs, host_image_id, q, limit, marker)


@router.get(
    "/host-images/{host_image_id}/logs/export",
    responses={
        200: {
            "content": {
                "text/csv": {},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            }
        }
    },
)
async def export_logs(
    request: Request,
    host_image_id: str,
    session: SessionDep,
    ctx: CtxDep,
    format: Literal["csv", "xlsx"] = "csv",
    columns: str | None = None,
    header: Literal["keys", "labels"] = "labels",
    lang: Literal["zh-CN", "en"] = "zh-CN",
    scope: Literal["loaded", "all"] = "all",
    limit: Annotated[int | None, Query(ge=1, le=100000)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    success: bool | None = None,
) -> Any:
    q = _query(since, until, action, success)
    where = await run_in_threadpool(logs.host_image_log_filter, session, ctx, host_image_id, q)
    keys, heads, rows = logs.export_spec(columns, header, lang, scope, limit)
    factory = request.app.state.session_factory
    stem = f"host-image-{host_image_id}-logs"
    if format == "xlsx":

        def build() -> str:
            with session_scope(factory) as s:
                return logs.write_xlsx(logs.iter_entries(s, where, rows), keys, heads, lang)

        path = await run_in_threadpool(build)
        return FileResponse(
            path,
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": content_disposition(f"{stem}.xlsx")},
            background=BackgroundTask(os.unlink, path),
        )

    def generate() -> Iterator[bytes]:
        with session_scope(factory) as s:
            yield from logs.csv_chunks(logs.iter_entries(s, where, rows), keys, heads, lang)

    return StreamingResponse(
        await primed(generate()),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(f"{stem}.csv")},
    )


@router.get("/logs", response_model=LogPage)
async def all_logs(
    run: Run,
    limit: Limit = 20,
    marker: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    success: bool | None = None,
    obj_type: str | None = None,
    obj_id: str | None = None,
) -> dict[str, Any]:
    q = _query(since, until, action, success, obj_type, obj_id)
    return await run(logs.all_logs, q, limit, marker)


@router.get("/logs/{entry_id}", response_model=LogEntryOut)
async def get_entry(
    entry_id: Annotated[int, Path(ge=1, le=ROW_ID_MAX)], run: Run
) -> dict[str, Any]:
    return await run(logs.get_entry, entry_id)
