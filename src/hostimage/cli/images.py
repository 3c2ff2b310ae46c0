"""``image``: system images (系统镜像) and sub-images — list, show, upload, download, update,
delete."""

from __future__ import annotations

import functools
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
    usage,
)
from hostimage.cli.errors import ApiError
from hostimage.cli.output import Output, echo, emit, note, print_fields, print_table, size, when
from hostimage.cli.tasks import WaitOpt, follow_results, hint_results
from hostimage.cli.vocab import EXTENSION_FORMATS, DiskFormat, ImageStatus, OsType, View

image_app = typer.Typer(
    help="System images (系统镜像): single disks, uploaded or sub-images of host images.",
    no_args_is_help=True,
)

ImageArg = Annotated[str, typer.Argument(metavar="IMAGE", help="Image id or name.")]


def show_image(img: dict[str, Any]) -> None:
    """An image's fields."""
    status = img["status"] + (f" ({img['status_reason']})" if img.get("status_reason") else "")
    sub = None
    if img.get("host_image_id"):
        sub = f"{img['role']} disk {img['index']} of host image {img['host_image_id']}"
    print_fields(
        [
            ("ID", img["id"]),
            ("Name", img["name"]),
            ("Status", status),
            ("Disk format", img["disk_format"]),
            ("Size", size(img["size"])),
            ("Virtual size", size(img["virtual_size"])),
            ("Checksum", img.get("checksum")),
            ("OS type", img.get("os_type")),
            ("Share scope", img.get("share_scope")),
            ("Sub-image", sub),
            ("Project", img["project_id"]),
            ("Created", when(img["created_at"])),
            ("Updated", when(img["updated_at"])),
            ("Description", img.get("description")),
        ]
    )


def list_table(doc: dict[str, Any]) -> None:
    """Images, one row each, and the paging position."""
    print_table(
        ("ID", "NAME", "STATUS", "FORMAT", "SIZE", "VIRTUAL SIZE", "SUB-IMAGE OF", "CREATED"),
        [
            (
                i["id"],
                i["name"],
                i["status"],
                i["disk_format"],
                size(i["size"]),
                size(i["virtual_size"]),
                i.get("host_image_id"),
                when(i["created_at"]),
            )
            for i in doc["items"]
        ],
        optional=("SUB-IMAGE OF", "CREATED"),
    )
    shown, total, offset = len(doc["items"]), doc["total"], doc.get("offset", 0)
    if shown < total:
        note(f"{offset + 1}–{offset + shown} of {total}; next page: --offset {offset + shown}")


@command(image_app, "list")
def image_list(
    view: Annotated[View | None, typer.Option(help="project, domain or system view.")] = None,
    name: Annotated[str | None, typer.Option(help="Name contains.")] = None,
    status: Annotated[ImageStatus | None, typer.Option(help="Status.")] = None,
    fmt: Annotated[DiskFormat | None, typer.Option("--format", help="Disk format.")] = None,
    standalone: Annotated[
        bool, typer.Option("--standalone", help="Leave out sub-images of host images.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
) -> None:
    """List images (newest first); sub-images are included unless --standalone."""
    doc = api().get(
        "/images",
        scope=view.value if view else None,
        name=name,
        status=status.value if status else None,
        disk_format=fmt.value if fmt else None,
        standalone=True if standalone else None,
        limit=limit,
        offset=offset,
    )
    emit(doc, output(), list_table)


@command(image_app, "show")
def image_show(image: ImageArg) -> None:
    """Show an image."""
    emit(api().get(f"/images/{resolve.image(image)}"), output(), show_image)


def guess_format(path: Path) -> DiskFormat:
    """The disk format from the file name's extension."""
    fmt = EXTENSION_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(EXTENSION_FORMATS))
        raise usage(f"cannot tell the format of {path.name} ({known}); give --format")
    return fmt


@command(image_app, "upload")
def image_upload(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Disk image file.")
    ],
    name: Annotated[str | None, typer.Option(help="Image name (default: the file name).")] = None,
    fmt: Annotated[
        DiskFormat | None, typer.Option("--format", "-f", help="Default: from the extension.")
    ] = None,
    description: Annotated[str, typer.Option(help="Description.")] = "",
    os_type: Annotated[OsType | None, typer.Option("--os-type", help="OS type.")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Owner (default: current project).")
    ] = None,
    image_id: Annotated[
        str | None,
        typer.Option(
            help="Upload into this existing image — queued, or killed by a failed upload "
            "(retry) — instead of a new one."
        ),
    ] = None,
) -> None:
    """Upload a disk image; prints the new image's id (-o json: the whole image).

    The data is streamed; the server checks its format and computes the SHA-256 on the way.
    """
    from hostimage.cli import transfer

    created = False
    if image_id is None:
        body: dict[str, Any] = {
            "name": name or file.name,
            "disk_format": (fmt or guess_format(file)).value,
            "description": description,
        }
        if os_type:
            body["os_type"] = os_type.value
        if project:
            body["project_id"] = resolve.project_id(project)
        image_id = str(api().post("/images", body)["id"])
        created = True
    try:
        img = transfer.upload(api(), image_id, file)
    except (ApiError, KeyboardInterrupt):
        if created:
            try:
                api().delete(f"/images/{image_id}")
                note(f"The new image {image_id} was removed again.")
            except ApiError:
                note(f"Image {image_id} was kept; retry with --image-id {image_id}.")
        raise
    if output() is Output.TABLE:
        echo(img["id"])
        note(
            f"Uploaded {file.name} as image {img['name']}: {img['disk_format']}, "
            f"{size(img['size'])}, {img['checksum']}."
        )
    else:
        emit(img, output(), show_image)


@command(image_app, "download", output_option=False)
def image_download(
    image: ImageArg,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="A format copy (default: native).")
    ] = None,
    dest: Annotated[
        Path | None,
        typer.Option(
            "--output", "-O", help="File or directory (default: NAME.FORMAT here); - for stdout."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue a partial download.")
    ] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Download an image's data (or a format copy), resumable, checksum verified."""
    from hostimage.cli import transfer

    iid = resolve.image(image)
    if dest is not None and str(dest) == "-":
        transfer.to_stdout(api(), iid, fmt)
        return
    img = api().get(f"/images/{iid}")
    filename = f"{img['name']}.{fmt or img['disk_format']}"
    target = dest or Path(filename)
    if target.is_dir():
        target = target / filename
    if target.exists() and not force:
        raise usage(f"{target} exists; use --force to overwrite it")
    total, digest = transfer.download(api(), iid, target, fmt, resume=resume)
    echo(f"Downloaded {target} ({size(total)}, sha256:{digest}).")


@command(image_app, "update")
def image_update(
    image: ImageArg,
    name: Annotated[str | None, typer.Option(help="New name (standalone images only).")] = None,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    os_type: Annotated[OsType | None, typer.Option("--os-type", help="OS type.")] = None,
) -> None:
    """Edit an image (a sub-image takes only --description)."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if description is not None:
        body["description"] = description
    if os_type is not None:
        body["os_type"] = os_type.value
    if not body:
        raise usage("nothing to change; give --name, --description or --os-type")
    emit(api().patch(f"/images/{resolve.image(image)}", body), output(), show_image)


@command(image_app, "delete")
def image_delete(
    images: Annotated[list[str], typer.Argument(metavar="IMAGE...", help="Ids or names.")],
    yes: YesOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Delete standalone images (sub-images go with their host image)."""
    ids = [resolve.image(i) for i in images]
    confirm(f"Delete {len(ids)} image(s)? The data cannot be recovered.", yes)
    results = [item_result(i, functools.partial(api().delete, f"/images/{i}"), 202) for i in ids]
    code = report_results(results, verb="deleting")
    if wait:
        follow_results(results, "delete")
    else:
        hint_results(results)
    exit_with(code)
