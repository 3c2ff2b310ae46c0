"""``host-image`` verbs that change sharing, owner, protection, existence and format copies.

Each accepts several host images (ids or names); with more than one it uses the batch
endpoint and prints a per-item result table (exit code 3 when some items failed).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import typer

from hostimage.cli import resolve
from hostimage.cli.batch import mutate
from hostimage.cli.common import (
    YesOpt,
    api,
    command,
    confirm,
    exit_with,
    item_result,
    output,
    report_results,
    split_list,
    usage,
)
from hostimage.cli.host_images import IdsArg, host_image_app, share_text
from hostimage.cli.output import echo, emit
from hostimage.cli.tasks import WaitOpt, follow_results, hint_results
from hostimage.cli.vocab import ConvertFormat


def share_body(
    none: bool,
    projects: list[str] | None,
    whole_domain: bool,
    domains: list[str] | None,
    everyone: bool,
) -> dict[str, Any]:
    """The API body for one of the five share choices (exactly one must be given)."""
    chosen = [none, projects is not None, whole_domain, domains is not None, everyone]
    if sum(chosen) != 1:
        raise usage(
            "choose exactly one of --none, --projects, --whole-domain, --domains, --everyone"
        )
    if none:
        return {"scope": "none"}
    if projects is not None:
        return {
            "scope": "project",
            "project_ids": [resolve.project_id(p) for p in split_list(projects)],
        }
    if domains is not None:
        return {
            "scope": "domain",
            "domain_ids": [resolve.domain_id(d) for d in split_list(domains)],
        }
    if whole_domain:
        # 项目共享-全部: the owner's whole domain; with three-level permissions off
        # there is only one domain in practice, so the console sends scope system.
        three_level = bool(api().get("/settings").get("three_level_permissions"))
        return {"scope": "domain"} if three_level else {"scope": "system"}
    return {"scope": "system"}


def _shared(hid: str, name: str, hi: Any) -> str:
    if hi.get("share_scope") == "none":
        return f"Host image {name} ({hid}) is not shared any more."
    return f"Host image {name} ({hid}) is now shared with: {share_text(hi)}."


def _do_share(refs: list[str], body: dict[str, Any]) -> None:
    mutate(
        refs,
        single=lambda hid: api().post(f"/host-images/{hid}/share", body),
        action="share",
        params=body,
        verb="shared" if body["scope"] != "none" else "unshared",
        message=_shared,
    )


@command(host_image_app, "share")
def host_image_share(
    host_images: IdsArg,
    none: Annotated[bool, typer.Option("--none", help="不共享: owner project only.")] = False,
    projects: Annotated[
        list[str] | None,
        typer.Option(
            "--projects",
            metavar="PROJECTS",
            help="项目共享-部分: these projects of the owner's domain (ids or names, P1,P2).",
        ),
    ] = None,
    whole_domain: Annotated[
        bool,
        typer.Option(
            "--whole-domain",
            help="项目共享-全部: every project of the owner's domain "
            "(everyone while three-level permissions are off).",
        ),
    ] = False,
    domains: Annotated[
        list[str] | None,
        typer.Option(
            "--domains",
            metavar="DOMAINS",
            help="域共享-部分: these domains (three-level permissions on; D1,D2).",
        ),
    ] = None,
    everyone: Annotated[
        bool, typer.Option("--everyone", help="域共享-全部: every user of the cloud.")
    ] = False,
) -> None:
    """Set sharing (设置共享): exactly one of the five choices."""
    _do_share(host_images, share_body(none, projects, whole_domain, domains, everyone))


@command(host_image_app, "unshare")
def host_image_unshare(host_images: IdsArg) -> None:
    """Stop sharing (不共享): only the owner project sees the host image."""
    _do_share(host_images, {"scope": "none"})


@command(host_image_app, "change-project")
def host_image_change_project(
    host_images: IdsArg,
    project: Annotated[
        str, typer.Option("--project", "-p", help="Target project (id, name or DOMAIN/NAME).")
    ],
) -> None:
    """Move host images to another project (更改项目); they must not be shared."""
    target = resolve.project(project)
    body = {"project_id": target["id"]}
    mutate(
        host_images,
        single=lambda hid: api().post(f"/host-images/{hid}/change-project", body),
        action="change_project",
        params=body,
        verb="moved",
        message=lambda hid, name, hi: (
            f"Moved host image {hi['name']} ({hid}) to project {hi['project_name']} "
            f"(domain {hi['domain_name']})."
        ),
    )


def _protection(refs: list[str], on: bool) -> None:
    body = {"protected": on}
    word = "protected" if on else "unprotected"
    mutate(
        refs,
        single=lambda hid: api().post(f"/host-images/{hid}/protection", body),
        action="set_protection",
        params=body,
        verb=word,
        message=lambda hid, name, hi: (
            f"Deletion protection is {'on' if hi['protected'] else 'off'} "
            f"for host image {name} ({hid})."
        ),
    )


@command(host_image_app, "protect")
def host_image_protect(host_images: IdsArg) -> None:
    """Turn deletion protection (删除保护) on."""
    _protection(host_images, True)


@command(host_image_app, "unprotect")
def host_image_unprotect(host_images: IdsArg) -> None:
    """Turn deletion protection off (needed before deleting)."""
    _protection(host_images, False)


@command(host_image_app, "delete")
def host_image_delete(host_images: IdsArg, yes: YesOpt = False, wait: WaitOpt = False) -> None:
    """Delete host images with their sub-images, format copies and data (删除)."""
    ids, names = resolve.host_images(host_images)
    shown = ", ".join(names.get(i, i) for i in ids)
    confirm(f"Delete {len(ids)} host image(s): {shown}? The data cannot be recovered.", yes)
    mutate(
        ids,
        single=lambda hid: api().delete(f"/host-images/{hid}"),
        action="delete",
        params=None,
        verb="deleting",
        message=lambda hid, name, doc: (
            f"Deleting host image {names.get(hid, hid)} ({hid}); task {doc['task_id']}."
        ),
        after=(lambda rs: follow_results(rs, "delete")) if wait else hint_results,
        names=names,
    )


@command(host_image_app, "convert")
def host_image_convert(
    host_images: IdsArg,
    fmt: Annotated[
        ConvertFormat, typer.Option("--format", "-f", help="Format of the copies to make.")
    ],
    wait: WaitOpt = False,
) -> None:
    """Make copies of every sub-image in another disk format (多云镜像)."""
    ids, names = resolve.host_images(host_images)
    body = {"format": fmt.value}
    if len(ids) == 1:
        hid = ids[0]
        doc = api().post(f"/host-images/{hid}/formats", body)
        emit(
            doc,
            output(),
            lambda d: echo(
                f"Converting host image {names.get(hid, hid)} ({hid}) to {fmt.value}; "
                f"task {d['task_id']}."
            ),
        )
        results = [{"id": hid, "ok": True, "status": 202, "task_id": doc["task_id"]}]
        code = 0
    else:
        results = [
            item_result(
                hid, functools.partial(api().post, f"/host-images/{hid}/formats", body), 202
            )
            for hid in ids
        ]
        code = report_results(results, names, "converting")
    if wait:
        follow_results(results, f"convert to {fmt.value}")
    else:
        hint_results(results)
    exit_with(code)
