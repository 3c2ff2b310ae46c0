"""``host-image``: list, show, create (compose), update, sub-images, formats.

Sharing, moving, protection, deletion and conversion are in :mod:`host_image_actions`,
the operation log in :mod:`logs`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hostimage.cli import resolve
from hostimage.cli.batch import mutate
from hostimage.cli.common import api, command, output, usage
from hostimage.cli.output import (
    emit,
    note,
    out,
    print_fields,
    print_table,
    short_sum,
    size,
    when,
)
from hostimage.cli.vocab import (
    BootMode,
    DiskDriver,
    ImageStatus,
    NetDriver,
    Order,
    OsType,
    ShareScope,
    SortKey,
    View,
)

host_image_app = typer.Typer(
    help="Host images (主机镜像): every disk of a template VM as one image.",
    no_args_is_help=True,
)

IdsArg = Annotated[
    list[str], typer.Argument(metavar="HOST_IMAGE...", help="Host image ids or names.")
]
IdArg = Annotated[str, typer.Argument(metavar="HOST_IMAGE", help="Host image id or name.")]

# F3 attributes, shared by create and update.
Description = Annotated[str | None, typer.Option(help="Description (备注).")]
OsTypeOpt = Annotated[OsType | None, typer.Option("--os-type", help="OS type.")]
OsDistribution = Annotated[str | None, typer.Option(help="e.g. CentOS, Ubuntu.")]
OsVersion = Annotated[str | None, typer.Option(help="e.g. 7.9, 22.04.")]
OsArch = Annotated[str | None, typer.Option(help="e.g. x86_64, aarch64.")]
OsLanguage = Annotated[str | None, typer.Option(help="System language, e.g. en_US.")]
DiskDriverOpt = Annotated[DiskDriver | None, typer.Option("--disk-driver", help="Disk driver.")]
NetDriverOpt = Annotated[NetDriver | None, typer.Option("--net-driver", help="NIC driver.")]
MinRam = Annotated[int | None, typer.Option("--min-ram-mb", help="Minimum RAM in MiB.")]
Hypervisor = Annotated[str | None, typer.Option(help="Platform (应用平台): kvm, esxi, …")]
BootModeOpt = Annotated[BootMode | None, typer.Option("--boot-mode", help="Firmware.")]


def attributes(**values: Any) -> dict[str, Any]:
    """The F3 attributes that were given (enums as their values)."""
    return {k: (v.value if hasattr(v, "value") else v) for k, v in values.items() if v is not None}


def share_text(hi: dict[str, Any]) -> str:
    """A readable share scope: ``none``, ``projects: ops``, ``whole domain``, ``everyone``…"""
    scope = hi.get("share_scope")
    if scope == "project":
        names = ", ".join(p["name"] or p["id"] for p in hi.get("shared_projects") or [])
        return f"projects: {names}"
    if scope == "domain":
        names = ", ".join(d["name"] or d["id"] for d in hi.get("shared_domains") or [])
        return f"domains: {names}" if names else "whole domain"
    if scope == "system":
        return "everyone"
    return "none"


def show_host_image(hi: dict[str, Any]) -> None:
    """The detail view (F8): basic information, properties, other, sub-images."""
    status = hi["status"] + (f" ({hi['status_reason']})" if hi.get("status_reason") else "")
    print_fields(
        [
            ("ID", hi["id"]),
            ("Name", hi["name"]),
            ("Status", status),
            ("Cloud ID", hi.get("external_id")),
            ("Domain", hi["domain_name"]),
            ("Project", hi["project_name"]),
            ("Share scope", share_text(hi)),
            ("Type", "standard" if hi["is_standard"] else "custom"),
            ("Sub-images", hi["sub_image_count"]),
            ("Size", size(hi["size"])),
            ("Created", when(hi["created_at"])),
            ("Updated", when(hi["updated_at"])),
            ("Description", hi["description"]),
        ],
        title="Basic information",
    )
    out().print()
    min_disk = hi.get("min_disk_mb")
    min_ram = hi.get("min_ram_mb")
    print_fields(
        [
            ("Disk format", hi.get("disk_format")),
            ("OS type", hi.get("os_type")),
            ("OS distribution", hi.get("os_distribution")),
            ("OS version", hi.get("os_version")),
            ("OS architecture", hi.get("os_arch")),
            ("OS language", hi.get("os_language")),
            ("Minimum RAM", f"{min_ram} MiB" if min_ram else None),
            ("Minimum disk", f"{min_disk} MiB" if min_disk is not None else None),
            ("Virtual size", size(hi.get("virtual_size"))),
            ("Disk driver", hi.get("disk_driver")),
            ("NIC driver", hi.get("net_driver")),
            ("Platform", hi.get("hypervisor")),
            ("Boot mode", hi.get("boot_mode")),
            ("Source server", hi.get("source_server_id")),
        ],
        title="Image properties",
    )
    out().print()
    print_fields(
        [
            ("Deletion protection", hi["protected"]),
            ("Can delete", hi["can_delete"]),
            ("Why not", hi.get("delete_fail_reason")),
        ],
        title="Other",
    )
    if hi.get("sub_images"):
        out().print()
        sub_image_table(hi["sub_images"])


def sub_image_table(items: list[dict[str, Any]]) -> None:
    """The 子镜像 tab: disk order, role, format, size, status."""
    print_table(
        ("INDEX", "ID", "NAME", "DISK", "FORMAT", "SIZE", "VIRTUAL SIZE", "STATUS", "CREATED"),
        [
            (
                s["index"],
                s["id"],
                s["name"],
                "system" if s["role"] == "root" else "data",
                s["disk_format"],
                size(s["size"]),
                size(s["virtual_size"]),
                s["status"],
                when(s["created_at"]),
            )
            for s in items
        ],
        title="Sub-images",
        optional=("CREATED",),
    )


def list_table(doc: dict[str, Any]) -> None:
    """The host-image list: one row per host image, and the paging position."""
    print_table(
        ("ID", "NAME", "STATUS", "OS", "SIZE", "DISKS", "SHARE", "PROTECTED", "PROJECT", "CREATED"),
        [
            (
                h["id"],
                h["name"],
                h["status"],
                h.get("os_type"),
                size(h["size"]),
                h["sub_image_count"],
                share_text(h),
                h["protected"],
                h["project_name"],
                when(h["created_at"]),
            )
            for h in doc["items"]
        ],
        optional=("OS", "CREATED"),
    )
    shown, total, offset = len(doc["items"]), doc["total"], doc.get("offset", 0)
    if shown < total:
        note(f"{offset + 1}–{offset + shown} of {total}; next page: --offset {offset + shown}")
    else:
        note(f"{total} host image(s).")


@command(host_image_app, "list")
def host_image_list(
    view: Annotated[
        View | None,
        typer.Option(help="project, domain (域管理后台) or system (管理后台); default: project."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name contains (case-insensitive).")] = None,
    status: Annotated[ImageStatus | None, typer.Option(help="Status.")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Owner project.")] = None,
    domain: Annotated[str | None, typer.Option("--domain", "-d", help="Owner domain.")] = None,
    os_type: OsTypeOpt = None,
    protected: Annotated[
        bool | None, typer.Option("--protected/--unprotected", help="Deletion protection.")
    ] = None,
    share_scope: Annotated[ShareScope | None, typer.Option(help="Share scope.")] = None,
    standard: Annotated[
        bool | None, typer.Option("--standard/--custom", help="Saved from a VM or composed.")
    ] = None,
    sort: Annotated[SortKey, typer.Option(help="Sort key.")] = SortKey.CREATED_AT,
    order: Annotated[Order, typer.Option(help="Sort order.")] = Order.DESC,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page, not one.")] = False,
) -> None:
    """List host images in a view, with filters, sorting and paging."""
    params: dict[str, Any] = {
        "scope": view.value if view else None,
        "name": name,
        "status": status.value if status else None,
        "project_id": resolve.project_id(project) if project else None,
        "domain_id": resolve.domain_id(domain) if domain else None,
        "os_type": os_type.value if os_type else None,
        "protected": protected,
        "share_scope": share_scope.value if share_scope else None,
        "is_standard": standard,
        "order_by": sort.value,
        "order": order.value,
    }
    if all_pages:
        items = list(api().pages("/host-images", 1000 if limit == 20 else limit, **params))
        doc: dict[str, Any] = {
            "items": items,
            "total": len(items),
            "limit": len(items),
            "offset": 0,
        }
    else:
        doc = api().get("/host-images", limit=limit, offset=offset, **params)
    emit(doc, output(), list_table)


@command(host_image_app, "show")
def host_image_show(host_image: IdArg) -> None:
    """Show a host image: basic information, properties, protection and sub-images."""
    hid, _ = resolve.host_image(host_image)
    emit(api().get(f"/host-images/{hid}"), output(), show_host_image)


@command(host_image_app, "create")
def host_image_create(
    name: Annotated[str, typer.Argument(help="Name of the new host image.")],
    images: Annotated[
        list[str],
        typer.Option(
            "--image", "-i", help="Active image id or name; repeat, the first is the system disk."
        ),
    ],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Owner (default: current project).")
    ] = None,
    protected: Annotated[
        bool, typer.Option("--protected/--unprotected", help="Deletion protection.")
    ] = True,
    generate_name: Annotated[
        bool, typer.Option(help="Add a suffix when the name is taken.")
    ] = False,
    description: Description = None,
    os_type: OsTypeOpt = None,
    os_distribution: OsDistribution = None,
    os_version: OsVersion = None,
    os_arch: OsArch = None,
    os_language: OsLanguage = None,
    disk_driver: DiskDriverOpt = None,
    net_driver: NetDriverOpt = None,
    min_ram_mb: MinRam = None,
    hypervisor: Hypervisor = None,
    boot_mode: BootModeOpt = None,
) -> None:
    """Compose a host image from existing active images (the first is the system disk)."""
    body: dict[str, Any] = {
        "name": name,
        "image_ids": [resolve.image(i) for i in images],
        "protected": protected,
        "generate_name": generate_name,
        **attributes(
            description=description,
            os_type=os_type,
            os_distribution=os_distribution,
            os_version=os_version,
            os_arch=os_arch,
            os_language=os_language,
            disk_driver=disk_driver,
            net_driver=net_driver,
            min_ram_mb=min_ram_mb,
            hypervisor=hypervisor,
            boot_mode=boot_mode,
        ),
    }
    if project:
        body["project_id"] = resolve.project_id(project)
    hi = api().post("/host-images", body)
    emit(hi, output(), show_host_image)


@command(host_image_app, "update")
def host_image_update(
    host_images: IdsArg,
    name: Annotated[str | None, typer.Option(help="New name (one host image only).")] = None,
    description: Description = None,
    os_type: OsTypeOpt = None,
    os_distribution: OsDistribution = None,
    os_version: OsVersion = None,
    os_arch: OsArch = None,
    os_language: OsLanguage = None,
    disk_driver: DiskDriverOpt = None,
    net_driver: NetDriverOpt = None,
    min_ram_mb: MinRam = None,
    hypervisor: Hypervisor = None,
    boot_mode: BootModeOpt = None,
    protected: Annotated[
        bool | None, typer.Option("--protected/--unprotected", help="Deletion protection.")
    ] = None,
) -> None:
    """Edit attributes (修改属性) of one or several host images."""
    changes = attributes(
        name=name,
        description=description,
        os_type=os_type,
        os_distribution=os_distribution,
        os_version=os_version,
        os_arch=os_arch,
        os_language=os_language,
        disk_driver=disk_driver,
        net_driver=net_driver,
        min_ram_mb=min_ram_mb,
        hypervisor=hypervisor,
        boot_mode=boot_mode,
        protected=protected,
    )
    if not changes:
        raise usage("nothing to change; give at least one attribute option")
    if name is not None and len(host_images) > 1:
        raise usage("--name renames one host image; give a single id")
    mutate(
        host_images,
        single=lambda hid: api().patch(f"/host-images/{hid}", changes),
        action="update",
        params=changes,
        verb="updated",
    )


@command(host_image_app, "sub-images")
def host_image_sub_images(host_image: IdArg) -> None:
    """List the sub-images (子镜像) in disk order: index 0 is the system disk."""
    hid, _ = resolve.host_image(host_image)
    emit(
        api().get(f"/host-images/{hid}/sub-images"),
        output(),
        lambda d: sub_image_table(d["items"]),
    )


def formats_table(doc: dict[str, Any]) -> None:
    """The 多云镜像 table: one row per sub-image per format."""
    print_table(
        ("INDEX", "SUB-IMAGE", "FORMAT", "NATIVE", "SIZE", "CHECKSUM", "STATUS", "ERROR"),
        [
            (
                f.get("index"),
                f.get("sub_image_name") or f["sub_image_id"],
                f["format"],
                f.get("native", False),
                size(f.get("size")),
                short_sum(f.get("checksum")),
                f["status"],
                f.get("error"),
            )
            for f in doc["items"]
        ],
    )


@command(host_image_app, "formats")
def host_image_formats(host_image: IdArg) -> None:
    """List the copies in other disk formats (多云镜像), native format included."""
    hid, _ = resolve.host_image(host_image)
    emit(api().get(f"/host-images/{hid}/formats"), output(), formats_table)
