"""``server``: VMs of the built-in inventory and of libvirt hosts — list, show, create (from a
host image), start, stop, delete, save-image (保存镜像)."""

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
from hostimage.cli.errors import ApiError
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

server_app = typer.Typer(help="Servers (VMs): the built-in inventory and libvirt hosts.")
server_app.info.no_args_is_help = True

ServerArg = Annotated[str, typer.Argument(metavar="SERVER", help="Server id or name.")]
ServersArg = Annotated[list[str], typer.Argument(metavar="SERVER...", help="Ids or names.")]


def host_names(host_ids: list[str]) -> dict[str, str]:
    """Names of the hosts among ``host_ids`` (one ``GET /hosts``, none when every server is
    on the built-in inventory); ids stay as they are when the list cannot be read."""
    if all(h == resolve.BUILTIN_HOST for h in host_ids):
        return {}
    try:
        return {h["id"]: h["name"] for h in api().pages("/hosts", 1000)}
    except ApiError:
        return {}


def _host_label(host_id: str | None, names: dict[str, str]) -> str | None:
    if host_id is None or host_id == resolve.BUILTIN_HOST:
        return host_id
    name = names.get(host_id)
    return f"{name} ({host_id})" if name else host_id


def show_server(s: dict[str, Any], names: dict[str, str] | None = None) -> None:
    """A server's fields and disks (``names``: host names by id). The target, pool and
    volume columns of the disks appear when some disk has them (libvirt hosts)."""
    status = s["status"] + (f" ({s['status_reason']})" if s.get("status_reason") else "")
    print_fields(
        [
            ("ID", s["id"]),
            ("Name", s["name"]),
            ("Status", status),
            ("Host", _host_label(s.get("host_id"), names or {})),
            ("External ID", s.get("external_id")),
            ("Created here", s.get("created_here")),
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
    columns = ["INDEX", "TARGET", "SIZE", "FORMAT", "POOL", "VOLUME", "FROM IMAGE"]
    rows = [
        [
            d["index"],
            d.get("target"),
            size(d["size"]),
            d["format"],
            d.get("pool"),
            d.get("volume"),
            d.get("source_image_id"),
        ]
        for d in s["disks"]
    ]
    for col in ("VOLUME", "POOL", "TARGET"):
        i = columns.index(col)
        if all(r[i] is None for r in rows):
            columns.pop(i)
            for r in rows:
                r.pop(i)
    print_table(columns, rows, title="Disks")


def _show(server_id: str) -> None:
    """``GET`` a server and print it (the host's name looked up for the table)."""
    doc = api().get(f"/servers/{server_id}")
    if output() is Output.TABLE:
        names = host_names([doc.get("host_id") or resolve.BUILTIN_HOST])
        show_server(doc, names)
    else:
        emit(doc, output(), show_server)


def list_table(doc: dict[str, Any], names: dict[str, str] | None = None) -> None:
    """Servers, one row each (``names``: host names by id)."""
    names = names or {}
    print_table(
        ("ID", "NAME", "HOST", "STATUS", "OS", "DISKS", "HOST IMAGE", "CREATED"),
        [
            (
                s["id"],
                s["name"],
                names.get(s.get("host_id", ""), s.get("host_id")),
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
        str | None,
        typer.Option(help="ready, running, creating, saving, failed or missing."),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Only the servers of this host (id or name).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
) -> None:
    """List servers (status missing: the domain is gone from its host)."""
    doc = api().get(
        "/servers",
        scope=view.value if view else None,
        name=name,
        status=status,
        host_id=resolve.host_id(host) if host else None,
        limit=limit,
        offset=offset,
    )
    if output() is Output.TABLE:
        list_table(
            doc, host_names([s.get("host_id") or resolve.BUILTIN_HOST for s in doc["items"]])
        )
    else:
        emit(doc, output(), list_table)


@command(server_app, "show")
def server_show(server: ServerArg) -> None:
    """Show a server, its host and its disks."""
    _show(resolve.server(server))


def _mib(spec: str) -> int | None:
    """``20G``/``512M``/``1024`` (MiB) → MiB; None when it is no size."""
    text = spec.strip().upper().removesuffix("B").removesuffix("I")
    factor = 1
    if text.endswith("G"):
        factor, text = 1024, text[:-1]
    elif text.endswith("M"):
        text = text[:-1]
    return int(text) * factor if text.isdigit() else None


def _disk(spec: str) -> dict[str, Any]:
    """``20G``/``512M``/``1024`` (MiB) → blank disk; ``image:ID`` → disk from an image."""
    if spec.startswith("image:"):
        return {"image_id": resolve.image(spec.removeprefix("image:"))}
    mib = _mib(spec)
    if mib is None:
        raise usage(f"--disk {spec!r}: give a size (e.g. 20G, 512M) or image:ID")
    return {"size_mb": mib}


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
    host: Annotated[
        str | None,
        typer.Option("--host", help="Host to create it on (id or name; default: builtin)."),
    ] = None,
    start: Annotated[
        bool, typer.Option("--start", help="Start the VM once it is created.")
    ] = False,
    vcpus: Annotated[
        int | None, typer.Option("--vcpus", min=1, max=256, help="libvirt hosts: virtual CPUs.")
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option("--memory", help="libvirt hosts: memory, e.g. 2G, 512M (default 1G)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the creation until it ends.")
    ] = True,
) -> None:
    """Create a server, from a host image (all its disks) and/or blank disks, on the
    built-in inventory or a libvirt host (--host).

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
        "host_id": resolve.host_id(host) if host else None,
        "start": True if start else None,
        "vcpus": vcpus,
        "memory_mb": _memory(memory) if memory is not None else None,
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
    _show(created["id"])


def _memory(spec: str) -> int:
    mib = _mib(spec)
    if mib is None:
        raise usage(f"--memory {spec!r}: give a size (e.g. 2G, 512M)")
    return mib


_POWER = {"start": ("starting", "started"), "stop": ("stopping", "stopped")}


def _power(servers: list[str], verb: str, wait: bool) -> None:
    """Start or stop: the built-in inventory answers at once; a libvirt host's server answers
    with the task that powers its domain, followed with ``wait``."""
    going, done = _POWER[verb]
    ids = [resolve.server(s) for s in servers]
    if len(ids) == 1:
        doc = api().post(f"/servers/{ids[0]}/{verb}")
        task_id = doc.get("task_id")
        if task_id and wait:
            follow(task_id, f"{verb} {doc['name']}")
            doc = api().get(f"/servers/{ids[0]}")
        if task_id and not wait:
            emit(
                doc,
                output(),
                lambda s: echo(f"Server {s['name']} ({s['id']}) is {going}; task {task_id}."),
            )
            note(f"Follow it with: hostimage task wait {task_id}")
            return
        emit(doc, output(), lambda s: echo(f"Server {s['name']} ({s['id']}) is {s['status']}."))
        return
    results = [item_result(i, functools.partial(api().post, f"/servers/{i}/{verb}")) for i in ids]
    code = report_results(results, verb=going if any(r["task_id"] for r in results) else done)
    if wait:
        follow_results(results, verb)
    else:
        hint_results(results)
    exit_with(code)


PowerWaitOpt = Annotated[
    bool, typer.Option("--wait", help="libvirt hosts: follow the task until the VM is there.")
]


@command(server_app, "start")
def server_start(servers: ServersArg, wait: PowerWaitOpt = False) -> None:
    """Start servers (on a libvirt host a task starts the domain)."""
    _power(servers, "start", wait)


@command(server_app, "stop")
def server_stop(servers: ServersArg, wait: PowerWaitOpt = False) -> None:
    """Stop servers (a server must be stopped to save a host image). On a libvirt host a task
    shuts the domain down, and destroys it if it does not stop in time."""
    _power(servers, "stop", wait)


@command(server_app, "delete")
def server_delete(servers: ServersArg, yes: YesOpt = False, wait: WaitOpt = False) -> None:
    """Delete stopped servers and the disks the service created (host images made from them
    stay). A domain found on a libvirt host is never deleted: its server can only be
    forgotten once the domain is gone (status missing); that needs no task."""
    ids = [resolve.server(s) for s in servers]
    confirm(f"Delete {len(ids)} server(s) and the disks the service created for them?", yes)
    results = [item_result(i, functools.partial(api().delete, f"/servers/{i}"), 202) for i in ids]
    pending = any(r["ok"] and r["task_id"] for r in results)
    code = report_results(results, verb="deleting" if pending else "deleted")
    if wait:
        follow_results(results, "delete")
    else:
        hint_results(results)
    exit_with(code)


@command(server_app, "change-project")
def server_change_project(
    servers: ServersArg,
    project: Annotated[
        str, typer.Option("--project", "-p", help="Target project (id, name or DOMAIN/NAME).")
    ],
) -> None:
    """Move servers to another project: a VM found on a host starts in the host's project
    and is given to the project that uses it (system or domain administrators)."""
    target = resolve.project(project)
    body = {"project_id": target["id"]}
    shown = target["name"] or target["id"]
    ids = [resolve.server(s) for s in servers]
    if len(ids) == 1:
        doc = api().post(f"/servers/{ids[0]}/change-project", body)
        emit(
            doc,
            output(),
            lambda s: echo(f"Moved server {s['name']} ({s['id']}) to project {shown}."),
        )
        return
    results = [
        item_result(i, functools.partial(api().post, f"/servers/{i}/change-project", body))
        for i in ids
    ]
    exit_with(report_results(results, verb="moved"))


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
