"""``host``: compute hosts — the built-in inventory and libvirt hosts — list, show, add,
update, sync, delete.

Every signed-in user may list hosts (to choose one for ``server create --host``) but sees only
their id, name, driver and status; adding, changing, syncing and deleting is for system
administrators.
"""

from __future__ import annotations

import functools
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
    usage,
)
from hostimage.cli.output import Output, echo, emit, note, print_fields, print_table, when
from hostimage.cli.tasks import follow

host_app = typer.Typer(
    help="Compute hosts: the built-in inventory and libvirt hypervisors (sysadmin to change).",
    no_args_is_help=True,
)

HostArg = Annotated[str, typer.Argument(metavar="HOST", help="Host id or name.")]
PoolOpt = Annotated[
    str, typer.Option("--pool", help="The libvirt storage pool new VMs' volumes go in.")
]
ProjectOpt = Annotated[
    str, typer.Option("--project", "-p", help="Owner of the domains found on the host.")
]


def _status(h: dict[str, Any]) -> str:
    reason = h.get("status_reason")
    return str(h["status"]) + (f" ({reason})" if reason else "")


def show_host(h: dict[str, Any]) -> None:
    """A host's fields (the URI, pool, network, versions and counts are null, shown ``-``,
    for users other than system administrators)."""
    versions = h.get("versions") or {}
    print_fields(
        [
            ("ID", h["id"]),
            ("Name", h["name"]),
            ("Driver", h["driver"]),
            ("Status", _status(h)),
            ("URI", h.get("uri")),
            ("Storage pool", h.get("storage_pool")),
            ("Network", h.get("network")),
            ("Project", h.get("project_id")),
            ("Domain", h.get("domain_id")),
            ("libvirt", versions.get("libvirt")),
            ("Hypervisor", versions.get("hypervisor")),
            ("Servers", h.get("servers")),
            ("Synced", when(h.get("synced_at"))),
            ("Created", when(h.get("created_at"))),
            ("Updated", when(h.get("updated_at"))),
        ]
    )


def list_table(doc: dict[str, Any]) -> None:
    """Hosts, one row each, and the paging position."""
    print_table(
        ("ID", "NAME", "DRIVER", "STATUS", "URI", "POOL", "NETWORK", "SERVERS", "SYNCED"),
        [
            (
                h["id"],
                h["name"],
                h["driver"],
                h["status"],
                h.get("uri"),
                h.get("storage_pool"),
                h.get("network"),
                h.get("servers"),
                when(h.get("synced_at")),
            )
            for h in doc["items"]
        ],
        # URIs never wrap: on a narrow terminal the URI goes too (``host show`` has it).
        optional=("SYNCED", "NETWORK", "URI"),
    )
    shown, total, offset = len(doc["items"]), doc["total"], doc.get("offset", 0)
    if shown < total:
        note(f"{offset + 1}–{offset + shown} of {total}; next page: --offset {offset + shown}")


def _warn_unreachable(h: dict[str, Any]) -> None:
    if h.get("status") == "unreachable":
        note(
            f"warning: host {h['name']} is unreachable: {h.get('status_reason') or 'no reason'}. "
            "It is registered; correct it with 'hostimage host update' or sync it again "
            "with 'hostimage host sync' once it answers."
        )


@command(host_app, "list")
def host_list(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
) -> None:
    """List compute hosts (the built-in inventory first, then by name)."""
    emit(api().get("/hosts", limit=limit, offset=offset), output(), list_table)


@command(host_app, "show")
def host_show(host: HostArg) -> None:
    """Show a host: where it is, its status (with the reason), versions and server count."""
    emit(api().get(f"/hosts/{resolve.host_id(host)}"), output(), show_host)


@command(host_app, "add")
def host_add(
    name: Annotated[str, typer.Argument(help="Host name (unique).")],
    uri: Annotated[
        str,
        typer.Option("--uri", help="libvirt URI: qemu:///system, qemu+ssh://user@host/system, …"),
    ],
    project: ProjectOpt,
    pool: PoolOpt,
    network: Annotated[
        str | None,
        typer.Option(
            "--network", help="libvirt network new VMs join (default: user-mode networking)."
        ),
    ] = None,
) -> None:
    """Register a libvirt host (sysadmin). It is probed at once and its domains are synced
    as servers of --project.

    A host that does not answer is still registered, with status unreachable: the reason is
    printed on standard error and the exit code is 0.
    """
    body: dict[str, Any] = {
        "name": name,
        "driver": "libvirt",
        "uri": uri,
        "project_id": resolve.project_id(project),
        "storage_pool": pool,
    }
    if network is not None:
        body["network"] = network
    host = api().post("/hosts", body)
    emit(host, output(), show_host)
    _warn_unreachable(host)


@command(host_app, "update")
def host_update(
    host: HostArg,
    name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    uri: Annotated[
        str | None, typer.Option("--uri", help="New libvirt URI (probed, then synced).")
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Owner of the domains found from now on."),
    ] = None,
    pool: Annotated[
        str | None, typer.Option("--pool", help="The storage pool new VMs' volumes go in.")
    ] = None,
    network: Annotated[
        str | None, typer.Option("--network", help="The libvirt network new VMs join.")
    ] = None,
    no_network: Annotated[
        bool, typer.Option("--no-network", help="New VMs get user-mode networking.")
    ] = False,
) -> None:
    """Change a host (sysadmin). A new URI is probed and synced; servers already found keep
    their projects."""
    if network is not None and no_network:
        raise usage("give --network or --no-network, not both")
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if uri is not None:
        body["uri"] = uri
    if project is not None:
        body["project_id"] = resolve.project_id(project)
    if pool is not None:
        body["storage_pool"] = pool
    if network is not None or no_network:
        body["network"] = network
    if not body:
        raise usage(
            "nothing to change; give --name, --uri, --project, --pool, --network or --no-network"
        )
    doc = api().patch(f"/hosts/{resolve.host_id(host)}", body)
    emit(doc, output(), show_host)
    if uri is not None:
        _warn_unreachable(doc)


@command(host_app, "sync")
def host_sync(
    host: HostArg,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the sync until it ends.")] = False,
) -> None:
    """Read the host's domains again: new ones become servers, changed ones are updated and
    servers whose domain is gone become missing (sysadmin)."""
    hid, name = resolve.host(host)
    label = name or hid
    task_id = api().post(f"/hosts/{hid}/sync")["task_id"]
    if not wait:
        emit(
            {"task_id": task_id},
            output(),
            lambda d: echo(f"Syncing host {label}; task {task_id}."),
        )
        note(f"Follow it with: hostimage task wait {task_id}")
        return
    follow(task_id, f"sync {label}")
    doc = api().get(f"/hosts/{hid}")
    if output() is Output.TABLE:
        echo(f"Host {doc['name']} ({hid}): {_status(doc)}, {doc.get('servers')} server(s).")
    else:
        emit(doc, output(), show_host)


@command(host_app, "delete")
def host_delete(
    hosts: Annotated[list[str], typer.Argument(metavar="HOST...", help="Ids or names.")],
    yes: YesOpt = False,
) -> None:
    """Forget libvirt hosts and the servers found on them (sysadmin). Their domains stay on
    the hosts; a host holding VMs the service created is refused (409 host_in_use)."""
    refs = [resolve.host(h) for h in hosts]
    ids = list(dict.fromkeys(hid for hid, _ in refs))
    names = {hid: name for hid, name in refs if name}
    confirm(
        f"Delete {len(ids)} host(s)? The servers found on them are forgotten; "
        "their domains stay on the hosts.",
        yes,
    )
    results = [item_result(i, functools.partial(api().delete, f"/hosts/{i}"), 204) for i in ids]
    exit_with(report_results(results, names, verb="deleted"))
