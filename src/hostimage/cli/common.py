"""What every client command shares: ``--output``, ``--profile``, ``--debug``, error handling
and exit codes, confirmation, and per-item result tables.

Exit codes: 0 ok, 1 error (API, network, configuration, task failed), 2 usage, 3 some items
of a batch failed, 130 interrupted (a task keeps running).
"""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from hostimage.cli import config
from hostimage.cli.errors import ApiError, CliError
from hostimage.cli.output import Output, emit, note, print_table

if TYPE_CHECKING:
    from hostimage.cli.client import Api

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130

OutputOpt = Annotated[
    Output,
    typer.Option("--output", "-o", help="Output format: table for people, json/yaml for scripts."),
]
DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Print every request (method, URL, request id) on stderr.",
        envvar="HOSTIMAGE_DEBUG",
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Connection profile (default: HOSTIMAGE_PROFILE, else the current one).",
        show_default=False,
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Invocation:
    """The common options of the running command and the API session made from them."""

    output: Output = Output.TABLE
    debug: bool = False
    profile: str | None = None
    _conn: config.Connection | None = field(default=None, repr=False)
    _api: Api | None = field(default=None, repr=False)

    def connection(self) -> config.Connection:
        """The resolved profile, URL and token (environment overrides applied)."""
        if self._conn is None:
            self._conn = config.connection(self.profile)
        return self._conn

    def api(self) -> Api:
        """An authenticated session (error when there is no token)."""
        if self._api is None:
            conn = self.connection()
            if not conn.token:
                raise CliError(
                    f"not logged in (profile {conn.profile!r}); run 'hostimage login' "
                    "or set HOSTIMAGE_URL and HOSTIMAGE_TOKEN"
                )
            from hostimage.cli.client import Api

            self._api = Api(conn.url, conn.token, debug=self.debug)
        return self._api

    def highest_view(self) -> str:
        """The widest view the caller may use (from the login, else asked)."""
        conn = self.connection()
        if conn.stored and conn.stored.highest_view and not conn.token_from_env:
            return conn.stored.highest_view
        return str(self.api().get("/auth/whoami").get("highest_view") or "project")

    def refresh(self) -> None:
        """Forget the resolved connection (after the stored token changed)."""
        self.close()
        self._conn = None
        self._api = None

    def close(self) -> None:
        """Close the HTTP session if one was opened."""
        if self._api is not None:
            self._api.close()


_CURRENT: ContextVar[Invocation] = ContextVar("hostimage_cli_invocation")


def current() -> Invocation:
    """The invocation of the command being run."""
    try:
        return _CURRENT.get()
    except LookupError:  # called outside a decorated command (tests, library use)
        inv = Invocation()
        _CURRENT.set(inv)
        return inv


def api() -> Api:
    """Shortcut for ``current().api()``."""
    return current().api()


def output() -> Output:
    """The ``--output`` format of the running command."""
    return current().output


_EXTRA = {
    "output": (OutputOpt, Output.TABLE),
    "debug": (DebugOpt, False),
    "profile": (ProfileOpt, None),
}


def fail(message: str, exit_code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` on one stderr line; return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(exit_code)


def command(
    group: typer.Typer, name: str | None = None, *, output_option: bool = True, **kwargs: Any
) -> Callable[[F], F]:
    """Register ``fn`` on ``group`` with the common options added and errors handled.

    The wrapped function reads the options through :func:`current`; API, network and
    configuration errors become one ``error:`` line on stderr and exit code 1. With
    ``output_option=False`` the command has no ``--output`` format option (it is free for a
    file name, as in ``image download``).
    """
    extra = {k: v for k, v in _EXTRA.items() if output_option or k != "output"}

    def decorate(fn: F) -> F:
        hints = typing.get_type_hints(fn, include_extras=True)
        sig = inspect.signature(fn)
        params = [
            p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
        ]
        for key, (annotation, default) in extra.items():
            params.append(
                inspect.Parameter(
                    key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
                )
            )
            hints[key] = annotation

        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            inv = Invocation(
                output=kw.pop("output", Output.TABLE),
                debug=kw.pop("debug"),
                profile=kw.pop("profile"),
            )
            token = _CURRENT.set(inv)
            try:
                return fn(*args, **kw)
            except CliError as exc:
                raise fail(exc.message, exc.exit_code) from None
            except config.ConfigError as exc:
                raise fail(str(exc)) from None
            except KeyboardInterrupt:
                raise fail("interrupted", EXIT_INTERRUPTED) from None
            finally:
                inv.close()
                _CURRENT.reset(token)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = hints
        group.command(name, **kwargs)(wrapper)
        return typing.cast(F, wrapper)

    return decorate


def usage(message: str) -> CliError:
    """A usage error (exit code 2) to raise from a command."""
    return CliError(message, exit_code=EXIT_USAGE)


def confirm(question: str, yes: bool) -> None:
    """Ask on stderr before a destructive action unless ``--yes``; anything but yes (or no
    input at all) aborts with exit code 1. Standard output stays clean for scripts."""
    if yes:
        return
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:
        sys.stderr.write("\n")
        raise CliError("no answer on standard input; use --yes to skip the question")
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("aborted; nothing was changed")


def split_list(values: Sequence[str] | None) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]`` (repeatable and comma-separated options)."""
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def item_result(item_id: str, call: Callable[[], Any], ok_status: int = 200) -> dict[str, Any]:
    """Run one item of a client-side batch; shape the outcome like the batch endpoint."""
    try:
        answer = call()
    except ApiError as exc:
        return {
            "id": item_id,
            "ok": False,
            "status": exc.status,
            "error": {"code": exc.code, "detail": exc.detail},
            "task_id": None,
        }
    task_id = answer.get("task_id") if isinstance(answer, dict) else None
    return {"id": item_id, "ok": True, "status": ok_status, "error": None, "task_id": task_id}


def report_results(
    results: list[dict[str, Any]], names: dict[str, str] | None = None, verb: str = "done"
) -> int:
    """Print per-item results (a table, or the ``{results}`` document) and return the exit
    code: 0 all ok, 3 some failed, 1 all failed."""
    names = names or {}

    def render(doc: dict[str, Any]) -> None:
        columns = ["ID", "NAME", "RESULT", "STATUS", "ERROR", "TASK"]
        rows = []
        for r in doc["results"]:
            error = r.get("error") or {}
            rows.append(
                [
                    r["id"],
                    names.get(r["id"]),
                    verb if r["ok"] else "failed",
                    r.get("status"),
                    f"{error.get('code')}: {error.get('detail')}" if error else None,
                    r.get("task_id"),
                ]
            )
        if not names:
            columns.pop(1)
            for row in rows:
                row.pop(1)
        if not any(r.get("task_id") for r in doc["results"]):
            columns.pop()
            for row in rows:
                row.pop()
        print_table(columns, rows)
        ok = sum(1 for r in doc["results"] if r["ok"])
        note(f"{ok} of {len(doc['results'])} succeeded.")

    emit({"results": results}, output(), render)
    failed = sum(1 for r in results if not r["ok"])
    if failed and failed == len(results):
        return EXIT_ERROR
    return EXIT_PARTIAL if failed else 0


def exit_with(code: int) -> None:
    """End the command with ``code`` unless it is 0."""
    if code:
        raise typer.Exit(code)
