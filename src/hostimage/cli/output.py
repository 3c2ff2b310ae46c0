"""Output: Rich tables for people, the API's JSON (or YAML) unchanged for scripts.

Tables go to stdout; progress bars, hints and errors go to stderr, so that ``-o json``
output can always be piped. Times are shown in UTC, sizes in binary units.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 160


class Output(StrEnum):
    """``--output`` formats."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def _console(stderr: bool) -> Console:
    file = sys.stderr if stderr else sys.stdout
    width: int | None = None
    if not os.environ.get("COLUMNS") and not file.isatty():
        width = PIPE_WIDTH
    return Console(file=file, width=width, highlight=False, soft_wrap=False, emoji=False)


def out() -> Console:
    """A console on stdout (made per call so that redirected streams are honoured)."""
    return _console(stderr=False)


def err() -> Console:
    """A console on stderr for hints, progress and errors."""
    return _console(stderr=True)


def note(message: str) -> None:
    """A hint for people on stderr (never mixed into machine output); never wrapped."""
    typer.echo(message, err=True)


def echo(message: str) -> None:
    """One plain line on stdout, never wrapped (scripts may grep it)."""
    typer.echo(message)


def dump(data: Any, fmt: Output) -> None:
    """Write ``data`` as JSON or YAML on stdout."""
    if fmt is Output.YAML:
        import yaml  # type: ignore[import-untyped]

        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=False)
        sys.stdout.write(text)
    else:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit(data: Any, fmt: Output, table: Callable[[Any], None]) -> None:
    """JSON/YAML as the API answered, or the human rendering."""
    if fmt is Output.TABLE:
        table(data)
    else:
        dump(data, fmt)


# Columns that may wrap when the terminal is narrow; the others (ids, times, sizes…) never do.
FLEXIBLE = frozenset(
    {"NAME", "ERROR", "NOTES", "DESCRIPTION", "SHARE", "SCOPE", "OBJECT", "EMAIL", "URL",
     "DISPLAY NAME", "PROJECT", "SUB-IMAGE", "USER", "DOMAIN"}
)  # fmt: skip
GAP = 2
NAME_WIDTH = 28


def _fit(
    console: Console, columns: list[str], rows: list[list[str]], optional: Collection[str]
) -> tuple[list[str], list[list[str]]]:
    """Leave out ``optional`` columns (rightmost first) while the table is too wide."""

    def natural() -> int:
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        return sum(widths) + GAP * (len(widths) - 1)

    for name in reversed(columns[:]):
        if natural() <= console.width:
            break
        if name in optional:
            i = columns.index(name)
            columns = columns[:i] + columns[i + 1 :]
            rows = [r[:i] + r[i + 1 :] for r in rows]
    return columns, rows


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A plain table with the given headers (cells rendered with :func:`cell`).

    Ids, times and sizes never wrap; names keep up to :data:`NAME_WIDTH` characters before
    they wrap; other free text wraps first.
    """
    cells = [[cell(v) for v in row] for row in rows]
    t = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, GAP - 1, 0, 0),
        header_style="bold",
    )
    for i, name in enumerate(columns):
        if name == "NAME":
            natural = max([len(name), *(len(r[i]) for r in cells)])
            t.add_column(name, overflow="fold", min_width=min(natural, NAME_WIDTH))
        elif name in FLEXIBLE:
            t.add_column(name, overflow="fold")
        else:
            t.add_column(name, no_wrap=True)
    for r in cells:
        t.add_row(*r)
    return t


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    optional: Collection[str] = (),
) -> None:
    """Print :func:`table` on stdout, under ``title`` if given; ``optional`` columns are left
    out when the terminal is too narrow for them."""
    console = out()
    cols, cells = _fit(console, list(columns), [[cell(v) for v in r] for r in rows], optional)
    if title:
        console.print(title, style="bold", markup=False)
    console.print(table(cols, cells))


def print_fields(pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
    """A two-column field/value table (the detail views); a title starts a new section."""
    if title:
        out().print(title, style="bold", markup=False)
    t = Table(
        box=None,
        show_edge=False,
        pad_edge=False,
        padding=(0, 2, 0, 0),
        show_header=False,
    )
    t.add_column("field", style="bold", no_wrap=True)
    t.add_column("value", overflow="fold")
    for key, value in pairs:
        t.add_row(key, cell(value))
    out().print(t)


def cell(value: Any) -> str:
    """A table cell: ``-`` for nothing, ``yes``/``no`` for booleans, lists joined."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def short_sum(checksum: str | None) -> str | None:
    """``sha256:<64 hex>`` → ``sha256:<first 16 hex>…`` for tables."""
    if not checksum or len(checksum) <= 24:
        return checksum
    return checksum[:23] + "…"


def when(value: str | None) -> str | None:
    """``2026-11-27T18:31:06.392909Z`` → ``2026-11-27 18:31:06`` (UTC)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def size(nbytes: int | None) -> str | None:
    """Bytes in binary units: ``4.0 MiB``; ``0 B``."""
    if nbytes is None:
        return None
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"  # pragma: no cover


def refs(items: Iterable[dict[str, Any]] | None) -> str:
    """``[{id, name}]`` → ``ops, qa``."""
    return ", ".join(str(i.get("name") or i.get("id")) for i in items or [])
