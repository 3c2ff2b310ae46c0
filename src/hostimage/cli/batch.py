"""Mutating verbs on several host images: one id uses the single endpoint, several ids the
batch endpoint (``POST /host-images/batch``) with a per-item result table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hostimage.cli import resolve
from hostimage.cli.common import api, exit_with, output, report_results
from hostimage.cli.output import echo, emit


def mutate(
    refs: list[str],
    *,
    single: Callable[[str], Any],
    action: str,
    params: dict[str, Any] | None,
    verb: str,
    message: Callable[[str, str, Any], str] | None = None,
    after: Callable[[list[dict[str, Any]]], None] | None = None,
    names: dict[str, str] | None = None,
) -> None:
    """Run ``action`` on the host images ``refs`` (ids or names).

    ``single(id)`` calls the single endpoint; ``message(id, name, answer)`` words its result
    for people; ``after(results)`` runs once the results are printed (e.g. to wait for tasks);
    ``names`` are names already known for ids.
    Exit code 3 when some items of a batch failed, 1 when all did.
    """
    ids, found = resolve.host_images(refs)
    names = {**found, **(names or {})}
    if len(ids) == 1:
        hid = ids[0]
        answer = single(hid)
        name = (answer.get("name") if isinstance(answer, dict) else None) or names.get(hid)

        def render(doc: Any) -> None:
            if message is not None:
                echo(message(hid, name or hid, doc))
            else:
                echo(f"{verb.capitalize()} host image {name or hid} ({hid}).")

        emit(answer, output(), render)
        task_id = answer.get("task_id") if isinstance(answer, dict) else None
        if after is not None:
            after([{"id": hid, "ok": True, "status": 200, "error": None, "task_id": task_id}])
        return
    body: dict[str, Any] = {"action": action, "ids": ids, "params": params or {}}
    results: list[dict[str, Any]] = api().post("/host-images/batch", body)["results"]
    code = report_results(results, names, verb)
    if after is not None:
        after(results)
    exit_with(code)
