"""Reading the operation log: a host image's tab, all visible entries, one entry, exports."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import xlsxwriter
from sqlalchemy import ColumnElement, and_, false, select
from sqlalchemy.orm import Session

from hostimage.db.models import HostImage, Image, LogEntry
from hostimage.db.scoping import visible
from hostimage.domain.oplog import MAX_LOG_LIMIT, column_label, parse_columns
from hostimage.errors import NotFound, ValidationFailed
from hostimage.services import oplog
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import get_visible

EXPORT_BATCH = 1000


def host_image_log_filter(
    session: Session, ctx: RequestContext, host_image_id: str, q: oplog.LogQuery
) -> list[ColumnElement[bool]]:
    """Conditions for a visible host image's entries and its sub-images' (404 if invisible)."""
    get_visible(session, ctx, host_image_id)
    return [LogEntry.root_id == host_image_id, *oplog.filters(q)]


def host_image_logs(
    session: Session,
    ctx: RequestContext,
    host_image_id: str,
    q: oplog.LogQuery,
    limit: int,
    marker: str | None,
) -> dict[str, Any]:
    """One page of a host image's log tab (F10), newest first."""
    return oplog.page(session, host_image_log_filter(session, ctx, host_image_id, q), limit, marker)


def _object_visible(session: Session, ctx: RequestContext, obj_id: str) -> bool:
    p = ctx.principal
    if session.scalar(select(HostImage.id).where(HostImage.id == obj_id, visible(HostImage, p))):
        return True
    return session.scalar(select(Image.id).where(Image.id == obj_id, visible(Image, p))) is not None


def all_logs_filter(
    session: Session, ctx: RequestContext, q: oplog.LogQuery
) -> list[ColumnElement[bool]]:
    """Conditions for ``GET /logs``: entries the caller may see (none for an invisible obj_id)."""
    conds = oplog.filters(q)
    if q.obj_id:
        if _object_visible(session, ctx, q.obj_id):
            return conds
        if _object_exists(session, q.obj_id):
            return [false()]
        # A deleted object's entries stay readable within the reach of its owners.
    return [*conds, oplog.visible_log_filter(session, ctx, None)]


def _object_exists(session: Session, obj_id: str) -> bool:
    return session.get(HostImage, obj_id) is not None or session.get(Image, obj_id) is not None


def all_logs(
    session: Session, ctx: RequestContext, q: oplog.LogQuery, limit: int, marker: str | None
) -> dict[str, Any]:
    """One page of every visible log entry, newest first."""
    return oplog.page(session, all_logs_filter(session, ctx, q), limit, marker)


def get_entry(session: Session, ctx: RequestContext, entry_id: int) -> dict[str, Any]:
    """One entry the caller may see (404 otherwise)."""
    entry = session.get(LogEntry, entry_id)
    if entry is not None:
        allowed = _object_visible(session, ctx, entry.root_id) or session.scalar(
            select(LogEntry.id).where(
                LogEntry.id == entry_id, oplog.visible_log_filter(session, ctx, None)
            )
        )
        if allowed:
            return oplog.serialize(entry)
    raise NotFound(f"Log entry {entry_id} not found.")


def iter_entries(
    session: Session, where: list[ColumnElement[bool]], limit: int | None
) -> Iterator[LogEntry]:
    """Every matching entry newest first, fetched in batches (bounded memory)."""
    remaining = limit
    last: int | None = None
    while remaining is None or remaining > 0:
        n = EXPORT_BATCH if remaining is None else min(EXPORT_BATCH, remaining)
        conds = list(where) + ([LogEntry.id < last] if last is not None else [])
        batch = list(
            session.scalars(
                select(LogEntry).where(and_(*conds)).order_by(LogEntry.id.desc()).limit(n)
            )
        )
        if not batch:
            return
        yield from batch
        last = batch[-1].id
        if remaining is not None:
            remaining -= len(batch)
        if len(batch) < n:
            return


def _cell(entry: LogEntry, key: str, lang: str) -> str | int:
    value = getattr(entry, key)
    if key == "time" and isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if key == "success":
        if lang.lower().startswith("en"):
            return "success" if value else "failure"
        return "成功" if value else "失败"
    if key == "notes":
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if key == "id":
        return int(value)
    return "" if value is None else str(value)


def export_spec(
    columns: str | None, header: str, lang: str, scope: str, limit: int | None
) -> tuple[list[str], list[str], int | None]:
    """Validate export options: columns, header row, and how many rows (``loaded`` needs a
    limit, ``all`` exports every matching entry)."""
    keys = parse_columns(columns)
    if header not in ("keys", "labels"):
        raise ValidationFailed("header must be keys or labels.")
    if scope not in ("loaded", "all"):
        raise ValidationFailed("scope must be loaded or all.")
    if scope == "loaded":
        if limit is None:
            limit = 20
        if not 1 <= limit <= 100 * MAX_LOG_LIMIT:
            raise ValidationFailed("limit must be between 1 and 100000 for loaded rows.")
    else:
        limit = None
    heads = keys if header == "keys" else [column_label(k, lang) for k in keys]
    return keys, heads, limit


# A spreadsheet program reads a cell starting with one of these as a formula (or, for tab
# and CR, strips them and then may): "CSV injection". A leading apostrophe keeps it text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str | int) -> str | int:
    """``value`` as a CSV cell no spreadsheet program evaluates: text that starts like a
    formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_chunks(
    entries: Iterator[LogEntry], keys: list[str], heads: list[str], lang: str
) -> Iterator[bytes]:
    """CSV with a UTF-8 BOM (so spreadsheet programs read Chinese right), in chunks. Cells
    that would start a formula are neutralised (:func:`csv_safe`).

    The first entry is read before the header is produced, so an error reading the log
    comes before the first chunk (when the answer can still be an error)."""
    entries = iter(entries)
    first = next(entries, None)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([csv_safe(h) for h in heads])
    yield ("\ufeff" + buf.getvalue()).encode()
    buf.seek(0)
    buf.truncate()
    if first is None:
        return
    for i, entry in enumerate(itertools.chain([first], entries), 1):
        writer.writerow([csv_safe(_cell(entry, k, lang)) for k in keys])
        if i % 500 == 0:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


def write_xlsx(entries: Iterator[LogEntry], keys: list[str], heads: list[str], lang: str) -> str:
    """Write an XLSX file in constant memory; returns its temporary path (caller removes it).

    Every text cell is a plain string: never a formula, a URL or a number read from text,
    whatever the text starts with."""
    fd, path = tempfile.mkstemp(prefix="oplog-", suffix=".xlsx")
    os.close(fd)
    book = xlsxwriter.Workbook(
        path,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    try:
        sheet = book.add_worksheet("operation log")
        bold = book.add_format({"bold": True})
        for col, head in enumerate(heads):
            sheet.write_string(0, col, head, bold)
        for row, entry in enumerate(entries, 1):
            for col, key in enumerate(keys):
                value = _cell(entry, key, lang)
                if isinstance(value, int):
                    sheet.write_number(row, col, value)
                else:
                    sheet.write_string(row, col, value)
        book.close()
    except BaseException:
        os.unlink(path)
        raise
    return path
