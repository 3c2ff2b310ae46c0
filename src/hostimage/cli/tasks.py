"""``task show`` / ``task wait`` and following a long operation with a progress bar.

Ctrl-C while following never cancels anything: the task keeps running on the server and the
command says how to follow it again (exit code 130).
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import typer

from hostimage.cli.common import EXIT_INTERRUPTED, api, command, output
from hostimage.cli.errors import CliError
from hostimage.cli.output import emit, err, note, print_fields, when

task_app = typer.Typer(help="Long operations (save, convert, create, delete).")
task_app.info.no_args_is_help = True

FINISHED = ("succeeded", "failed")

WaitOpt = Annotated[bool, typer.Option("--wait", help="Follow the task(s) until they end.")]


def poll_interval() -> float:
    """Seconds between two looks at a task (``HOSTIMAGE_POLL_INTERVAL``, default 0.5)."""
    try:
        return max(float(os.environ.get("HOSTIMAGE_POLL_INTERVAL", "0.5")), 0.05)
    except ValueError:
        return 0.5


def show_task(task: dict[str, Any]) -> None:
    """The task as a field table."""
    print_fields(
        [
            ("ID", task["id"]),
            ("Kind", task["kind"]),
            ("Target", f"{task['target_type']} {task['target_id']}"),
            ("Status", task["status"]),
            ("Progress", f"{task['progress']}%"),
            ("Error", task.get("error")),
            ("Attempts", task.get("attempts")),
            ("Created", when(task["created_at"])),
            ("Started", when(task.get("started_at"))),
            ("Finished", when(task.get("finished_at"))),
        ]
    )


def follow(task_id: str, label: str, timeout: float | None = None) -> dict[str, Any]:
    """Show the task's progress until it ends; return it when it succeeded.

    A failed task raises :class:`CliError`; Ctrl-C leaves it running and exits with 130.
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = err()
    deadline = None if timeout is None else time.monotonic() + timeout
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
    try:
        with progress:
            bar = progress.add_task(label, total=100, status="queued")
            while True:
                task: dict[str, Any] = api().get(f"/tasks/{task_id}")
                progress.update(bar, completed=task["progress"], status=task["status"])
                if task["status"] in FINISHED:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise CliError(
                        f"task {task_id} is still {task['status']} after {timeout:g} s; "
                        f"follow it with: hostimage task wait {task_id}"
                    )
                time.sleep(poll_interval())
    except KeyboardInterrupt:
        note(
            f"Stopped following; task {task_id} keeps running. "
            f"Follow it with: hostimage task wait {task_id}"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if task["status"] == "failed":
        raise CliError(f"task {task_id} ({task['kind']}) failed: {task.get('error') or 'unknown'}")
    if not console.is_terminal:
        note(f"{label}: done.")
    return task


def follow_results(results: list[dict[str, Any]], label: str) -> None:
    """Follow the task of every successful item of a result list, one after the other."""
    for r in results:
        if r.get("ok") and r.get("task_id"):
            follow(r["task_id"], f"{label} {r['id'][:8]}")


def hint_results(results: list[dict[str, Any]]) -> None:
    """Say how to follow the tasks of a result list later."""
    for r in results:
        if r.get("ok") and r.get("task_id"):
            note(f"Follow it with: hostimage task wait {r['task_id']}")


@command(task_app, "show")
def task_show(task_id: Annotated[str, typer.Argument(metavar="TASK_ID")]) -> None:
    """Show a task's status and progress."""
    emit(api().get(f"/tasks/{task_id}"), output(), show_task)


@command(task_app, "wait")
def task_wait(
    task_id: Annotated[str, typer.Argument(metavar="TASK_ID")],
    timeout: Annotated[
        float | None, typer.Option(help="Give up after this many seconds (exit 1).")
    ] = None,
) -> None:
    """Follow a task with a progress bar until it ends (exit 1 if it failed)."""
    task = follow(task_id, f"task {task_id[:8]}", timeout)
    emit(task, output(), show_task)
