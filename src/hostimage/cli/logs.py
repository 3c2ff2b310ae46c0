"""The operation log (操作日志): ``host-image logs``, its export, ``log list`` / ``log show``."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from hostimage.cli import resolve
from hostimage.cli.common import api, command, output, split_list, usage
from hostimage.cli.host_images import IdArg, host_image_app
from hostimage.cli.output import echo, emit, note, print_fields, print_table, size, when
from hostimage.cli.vocab import LogAction

log_app = typer.Typer(help="Operation log entries you can see (操作日志).", no_args_is_help=True)

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
NOTES_WIDTH = 60


class Header(StrEnum):
    """Export header row: readable labels or column keys."""

    LABELS = "labels"
    KEYS = "keys"


class Lang(StrEnum):
    """Language of export labels and of the result column."""

    ZH_CN = "zh-CN"
    EN = "en"


def moment(value: str | None) -> str | None:
    """``2h``, ``7d``, ``30m`` → that long ago (UTC ISO 8601); dates and times pass through."""
    if not value:
        return None
    m = _RELATIVE.match(value.strip())
    if m is None:
        return value
    delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    return (datetime.now(UTC) - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


SinceOpt = Annotated[
    str | None,
    typer.Option(help="From this time on (ISO 8601 date/time, or 2h, 7d ago), inclusive."),
]
UntilOpt = Annotated[str | None, typer.Option(help="Before this time (exclusive); same forms.")]
ActionOpt = Annotated[LogAction | None, typer.Option(help="Only this action.")]
SuccessOpt = Annotated[
    bool | None, typer.Option("--success/--failure", help="Only succeeded or refused requests.")
]
LimitOpt = Annotated[
    int | None,
    typer.Option(min=1, max=1000, help="Entries per page (default 20; 1000 with --all)."),
]
MarkerOpt = Annotated[str | None, typer.Option(help="Continue after this page (加载更多).")]
AllOpt = Annotated[bool, typer.Option("--all", help="Follow the markers to the oldest entry.")]


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return "-" if v is None or v == "" else str(v)


def _scope(state: dict[str, Any]) -> str:
    targets = len(state.get("project_ids") or []) + len(state.get("domain_ids") or [])
    return f"{state.get('scope')}({targets})" if targets else str(state.get("scope"))


def summarise_notes(notes: Any) -> str:
    """A short readable form of an entry's notes for the table (``log show`` has them all)."""
    if notes in (None, {}, []):
        return ""
    text = ""
    if isinstance(notes, dict):
        error = notes.get("error")
        old, new = notes.get("old"), notes.get("new")
        if isinstance(error, dict):
            text = f"{error.get('code')}: {error.get('detail')}"
        elif error:
            text = str(error)
        elif isinstance(notes.get("changes"), dict):
            text = "; ".join(
                f"{k}: {_value(v[0])} → {_value(v[1])}"
                if isinstance(v, list) and len(v) == 2
                else f"{k}: {v}"
                for k, v in notes["changes"].items()
            )
        elif isinstance(old, dict) and isinstance(new, dict) and "scope" in new:
            text = f"{_scope(old)} → {_scope(new)}"
        elif isinstance(notes.get("composed_from"), list):
            text = f"composed from {len(notes['composed_from'])} image(s)"
    if not text:
        text = json.dumps(notes, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= NOTES_WIDTH else text[: NOTES_WIDTH - 1] + "…"


def log_table(doc: dict[str, Any]) -> None:
    """Log entries, newest first, with a hint for the next page."""
    print_table(
        ("ID", "TIME", "OBJECT", "ACTION", "RESULT", "USER", "NOTES"),
        [
            (
                e["id"],
                when(e["time"]),
                f"{e['obj_type']} {e['obj_name']}",
                e["action"],
                "success" if e["success"] else "failure",
                e.get("actor_user_name"),
                summarise_notes(e.get("notes")),
            )
            for e in doc["items"]
        ],
    )
    if doc.get("next_marker"):
        note(f"Older entries: --marker {doc['next_marker']} (or --all)")


def _pages(path: str, limit: int | None, marker: str | None, every: bool, **params: Any) -> Any:
    if not every:
        return api().get(path, limit=limit or 20, marker=marker, **params)
    items: list[dict[str, Any]] = []
    while True:
        page = api().get(path, limit=limit or 1000, marker=marker, **params)
        items.extend(page["items"])
        marker = page.get("next_marker")
        if not marker:
            return {"items": items, "next_marker": None}


def _export(
    hid: str,
    target: Path,
    columns: list[str] | None,
    header: Header,
    lang: Lang | None,
    filters: dict[str, Any],
) -> None:
    suffix = target.suffix.lower().lstrip(".")
    if suffix not in ("csv", "xlsx"):
        raise usage("--export needs a file name ending in .csv or .xlsx")
    params = {
        "format": suffix,
        "scope": "all",
        "columns": ",".join(split_list(columns)) if columns else None,
        "header": header.value,
        "lang": lang.value if lang else None,
        **filters,
    }
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", dir=directory)
    written = 0
    try:
        with (
            os.fdopen(fd, "wb") as fh,
            api().stream("GET", f"/host-images/{hid}/logs/export", params=params) as resp,
        ):
            for chunk in resp.iter_bytes():
                fh.write(chunk)
                written += len(chunk)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    echo(f"Exported every matching log entry to {target} ({size(written)}).")


@command(host_image_app, "logs")
def host_image_logs(
    host_image: IdArg,
    since: SinceOpt = None,
    until: UntilOpt = None,
    action: ActionOpt = None,
    success: SuccessOpt = None,
    limit: LimitOpt = None,
    marker: MarkerOpt = None,
    every: AllOpt = False,
    export: Annotated[
        Path | None,
        typer.Option(help="Write every matching entry to FILE.csv or FILE.xlsx instead."),
    ] = None,
    columns: Annotated[
        list[str] | None,
        typer.Option(
            metavar="COLUMNS",
            help="Export columns, e.g. id,time,action,success,actor_user_name,notes.",
        ),
    ] = None,
    header: Annotated[Header, typer.Option(help="Export header row.")] = Header.LABELS,
    lang: Annotated[
        Lang | None, typer.Option(help="Export labels language (default zh-CN).")
    ] = None,
) -> None:
    """The host image's operation log, its sub-images' included, newest first."""
    hid, _ = resolve.host_image(host_image)
    filters = {
        "since": moment(since),
        "until": moment(until),
        "action": action.value if action else None,
        "success": success,
    }
    if export is not None:
        _export(hid, export, columns, header, lang, filters)
        return
    doc = _pages(f"/host-images/{hid}/logs", limit, marker, every, **filters)
    emit(doc, output(), log_table)


@command(log_app, "list")
def log_list(
    obj_type: Annotated[
        str | None, typer.Option(help="host_image or image.", show_default=False)
    ] = None,
    obj_id: Annotated[str | None, typer.Option(help="Object id (also after deletion).")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    action: ActionOpt = None,
    success: SuccessOpt = None,
    limit: LimitOpt = None,
    marker: MarkerOpt = None,
    every: AllOpt = False,
) -> None:
    """Every log entry you may see, newest first."""
    doc = _pages(
        "/logs",
        limit,
        marker,
        every,
        obj_type=obj_type,
        obj_id=obj_id,
        since=moment(since),
        until=moment(until),
        action=action.value if action else None,
        success=success,
    )
    emit(doc, output(), log_table)


def show_entry(e: dict[str, Any]) -> None:
    """One entry with its notes pretty-printed."""
    actor_project = e.get("actor_project_name") or e.get("actor_project_id")
    owner = "/".join(str(x) for x in (e.get("owner_domain_name"), e.get("owner_project_name")) if x)
    print_fields(
        [
            ("ID", e["id"]),
            ("Time", when(e["time"])),
            ("Object", f"{e['obj_type']} {e['obj_name']} ({e['obj_id']})"),
            ("Action", e["action"]),
            ("Result", "success" if e["success"] else "failure"),
            ("User", e.get("actor_user_name")),
            ("User project", actor_project),
            ("Owner", owner),
            ("Request ID", e.get("request_id")),
            ("Client IP", e.get("client_ip")),
        ]
    )
    if e.get("notes") not in (None, {}, []):
        echo("Notes:")
        echo(json.dumps(e["notes"], indent=2, ensure_ascii=False))


@command(log_app, "show")
def log_show(entry: Annotated[int, typer.Argument(metavar="ENTRY", help="Log entry id.")]) -> None:
    """Show one log entry in full (notes pretty-printed)."""
    emit(api().get(f"/logs/{entry}"), output(), show_entry)
