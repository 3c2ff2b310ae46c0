"""``server``: the built-in VM inventory — list, show, create (from a host image), start,
stop, delete, save-image (保存镜像)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hostimage.cli import resolve
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
from hostimage.cli.output import (
    Output,
    echo,
    emit,
    note,
    out,
    print_fields,
    print_table,
    size,
    when,
)
from hostimage.cli.tasks import WaitOpt, follow, follow_results, hint_results
from hostimage.cli.vocab import OsType, View

server_app = typer.Typer(help="Servers (VMs) of the built-in compute inventory.")
server_app.info.no_args_is_help = True

ServerArg = Annotated[str, typer.Argument(metavar="SERVER", help="Server id or name.")]
ServersArg = Annotated[list[str], typer.Argument(metavar="SERVER...", help="Ids or names.")]


def show_server(s: dict[str, Any]) -> None:
    """A server's fields and disks."""
    status = s["status"] + (f" ({s['status_reason']})" if s.get("status_reason") else "")
    print_fields(
        [
            ("ID", s["id"]),
            ("Name", s["name"]),
            ("Status", status),
            ("Hostname", s.get("hostname")),
            ("Login user", s.get("login_user")),
            ("OS type", s.get("os_type")),
            ("Host image", s.get("host_image_id")),
            ("Project", s["project_id"]),
            ("Created", when(s["created_at"])),
            ("Updated", when(s["updated_at"])),
        ]
    )
    out().print()
    print_table(
        ("INDEX", "SIZE", "FORMAT", "FROM IMAGE"),
        [(d["index"], size(d["size"]), d["format"], d.get("source_image_id")) for d in s["disks"]],
        title="Disks",
    )


def list_table(doc: dict[str, Any]) -> None:
    """Servers, one row each."""
    print_table(
        ("ID", "NAME", "STATUS", "OS", "DISKS", "HOST IMAGE", "CREATED"),
        [
            (
                s["id"],
                s["name"],
                s["status"],
                s.get("os_type"),
                len(s["disks"]),
                s.get("host_image_id"),
                when(s["created_at"]),
            )
            for s in doc["items"]
        ],
        optional=("HOST IMAGE", "CREATED"),
    )
    shown, total, offset = len(doc["items"]), doc["total"], doc.get("offset", 0)
    if shown < total:
        note(f"{offset + 1}–{offset + shown} of {total}; next page: --offset {offset + shown}")


@command(server_app, "list")
def server_list(
    view: Annotated[View | None, typer.Option(help="project, domain or system view.")] = None,
    name: Annotated[str | None, typer.Option(help="Name contains.")] = None,
    status: Annotated[
        str | None, typer.Option(help="ready, running, creating, saving or failed.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
) -> None:
    """List servers."""
    doc = api().get(
        "/servers",
        scope=view.value if view else None,
        name=name,
        status=status,
        limit=limit,
        offset=offset,
    )
    emit(doc, output(), list_table)


@command(server_app, "show")
def server_show(server: ServerArg) -> None:
    """Show a server and its disks."""
    emit(api().get(f"/servers/{resolve.server(server)}"), output(), show_server)


def _disk(spec: str) -> dict[str, Any]:
    """``20G``/``512M``/``1024`` (MiB) → blank disk; ``image:ID`` → disk from an image."""
    if spec.startswith("image:"):
        return {"image_id": resolve.image(spec.removeprefix("image:"))}
    text = spec.strip().upper().removesuffix("B")
    factor = 1
    if text.endswith("G"):
        factor, text = 1024, text[:-1]
    elif text.endswith("M"):
        text = text[:-1]
    if not text.isdigit():
        raise usage(f"--disk {spec!r}: give a size (e.g. 20G, 512M) or image:ID")
    return {"size_mb": int(text) * factor}


@command(server_app, "create")
def server_create(
    name: Annotated[str, typer.Argument(help="Server name.")],
    host_image: Annotated[
        str | None, typer.Option(help="Create the disks from this host image (id or name).")
    ] = None,
    disks: Annotated[
        list[str] | None,
        typer.Option("--disk", help="Extra disk: a size (20G, 512M) or image:ID; repeatable."),
    ] = None,
    hostname: Annotated[str | None, typer.Option(help="Hostname (default: the name).")] = None,
    login_user: Annotated[str | None, typer.Option(help="Login user to set.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the login password from stdin.")
    ] = False,
    ssh_key: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="SSH public key file.")
    ] = None,
    os_type: Annotated[OsType | None, typer.Option("--os-type", help="OS type.")] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Static address of the first interface, CIDR (e.g. 192.0.2.10/24); default: DHCP.",
        ),
    ] = None,
    gateway: Annotated[
        str | None, typer.Option("--gateway", help="Default gateway (with --address).")
    ] = None,
    dns: Annotated[
        list[str] | None,
        typer.Option("--dns", help="DNS servers, comma-separated or repeated (with --address)."),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Owner (default: current project).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the creation until it ends.")
    ] = True,
) -> None:
    """Create a server, from a host image (all its disks) and/or blank disks.

    The template's network configs are reset to DHCP on the first interface, or given the
    static --address (with --gateway and --dns).

    The login password is read from standard input (--password-stdin) or HOSTIMAGE_VM_PASSWORD.
    """
    body: dict[str, Any] = {"name": name, "disks": [_disk(d) for d in disks or []]}
    if host_image:
        body["host_image_id"] = resolve.host_image(host_image)[0]
    if not host_image and not body["disks"]:
        raise usage("give --host-image or at least one --disk")
    password = (
        sys.stdin.readline().rstrip("\r\n")
        if password_stdin
        else os.environ.get("HOSTIMAGE_VM_PASSWORD")
    )
    extra = {
        "hostname": hostname,
        "login_user": login_user,
        "password": password or None,
        "ssh_public_key": ssh_key.read_text().strip() if ssh_key else None,
        "os_type": os_type.value if os_type else None,
        "project_id": resolve.project_id(project) if project else None,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    if address:
        body["network"] = {"address": address, "gateway": gateway, "dns": split_list(dns or [])}
    elif gateway or dns:
        raise usage("--gateway and --dns go with --address")
    created = api().post("/servers", body)
    task_id = created["task_id"]
    if not wait:
        emit(
            created,
            output(),
            lambda s: echo(f"Creating server {name} ({s['id']}); task {task_id}."),
        )
        note(f"Follow it with: hostimage task wait {task_id}")
        return
    follow(task_id, f"create {name}")
    emit(api().get(f"/servers/{created['id']}"), output(), show_server)


def _power(servers: list[str], verb: str) -> None:
    ids = [resolve.server(s) for s in servers]
    if len(ids) == 1:
        doc = api().post(f"/servers/{ids[0]}/{verb}")
        emit(doc, output(), lambda s: echo(f"Server {s['name']} ({s['id']}) is {s['status']}."))
        return
    results = [item_result(i, functools.partial(api().post, f"/servers/{i}/{verb}")) for i in ids]
    exit_with(report_results(results, verb="started" if verb == "start" else "stopped"))


@command(server_app, "start")
def server_start(servers: ServersArg) -> None:
    """Start servers."""
    _power(servers, "start")


@command(server_app, "stop")
def server_stop(servers: ServersArg) -> None:
    """Stop servers (a server must be stopped to save a host image)."""
    _power(servers, "stop")


@command(server_app, "delete")
def server_delete(servers: ServersArg, yes: YesOpt = False, wait: WaitOpt = False) -> None:
    """Delete stopped servers and their disks (host images made from them stay)."""
    ids = [resolve.server(s) for s in servers]
    confirm(f"Delete {len(ids)} server(s) and their disks?", yes)
    results = [item_result(i, functools.partial(api().delete, f"/servers/{i}"), 202) for i in ids]
    code = report_results(results, verb="deleting")
    if wait:
        follow_results(results, "delete")
    else:
        hint_results(results)
    exit_with(code)


@command(server_app, "save-image")
def server_save_image(
    server: ServerArg,
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the new host image.")],
    description: Annotated[str, typer.Option(help="Description.")] = "",
    protected: Annotated[
        bool, typer.Option("--protected/--unprotected", help="Deletion protection.")
    ] = True,
    auto_start: Annotated[bool, typer.Option(help="Start the server afterwards.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the save until it ends.")] = False,
) -> None:
    """Save a stopped server's disks as a new host image (保存镜像)."""
    sid = resolve.server(server)
    body = {
        "name": name,
        "description": description,
        "protected": protected,
        "auto_start": auto_start,
    }
    doc = api().post(f"/servers/{sid}/save-host-image", body)
    task_id, hid = doc["task_id"], doc["host_image_id"]
    if not wait:
        emit(doc, output(), lambda d: echo(f"Saving host image {name} ({hid}); task {task_id}."))
        note(f"Follow it with: hostimage task wait {task_id}")
        return
    follow(task_id, f"save {name}")
    hi = api().get(f"/host-images/{hid}")
    if output() is Output.TABLE:
        echo(f"Saved host image {hi['name']} ({hid}): {hi['status']}, {size(hi['size'])}.")
    else:
        emit(hi, output(), lambda d: None)
