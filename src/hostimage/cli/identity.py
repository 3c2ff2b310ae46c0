"""Identity administration: ``domain``, ``project``, ``user``, ``role`` and ``settings``."""

from __future__ import annotations

import functools
import os
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

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
from hostimage.cli.output import emit, print_fields, print_table, when
from hostimage.cli.resolve import domain_id, project_id, user_id

domain_app = typer.Typer(help="Domains (域).", no_args_is_help=True)
project_app = typer.Typer(help="Projects (项目).", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
role_app = typer.Typer(help="Role assignments: sysadmin, domainadmin, member, viewer.")
settings_app = typer.Typer(help="Global settings (sysadmin to change).", no_args_is_help=True)
role_app.info.no_args_is_help = True

DescriptionOpt = Annotated[str, typer.Option("--description", help="Free text.")]


def register(app: typer.Typer) -> None:
    """Add the identity and settings groups to ``app``."""
    app.add_typer(domain_app, name="domain")
    app.add_typer(project_app, name="project")
    app.add_typer(user_app, name="user")
    app.add_typer(role_app, name="role")
    app.add_typer(settings_app, name="settings")


def _domains() -> dict[str, str]:
    return {d["id"]: d["name"] for d in api().get("/domains")["items"]}


# --- domains -------------------------------------------------------------------------------


@command(domain_app, "list")
def domain_list() -> None:
    """List the domains you can see."""
    doc = api().get("/domains")
    emit(
        doc,
        output(),
        lambda d: print_table(
            ("ID", "NAME", "DESCRIPTION", "CREATED"),
            [(x["id"], x["name"], x["description"], when(x["created_at"])) for x in d["items"]],
        ),
    )


@command(domain_app, "create")
def domain_create(
    name: Annotated[str, typer.Argument(help="Domain name (unique).")],
    description: DescriptionOpt = "",
) -> None:
    """Create a domain (sysadmin)."""
    doc = api().post("/domains", {"name": name, "description": description})
    emit(doc, output(), _show_plain)


def _label(key: str) -> str:
    words = key.replace("_", " ").capitalize().split(" ")
    return " ".join("ID" if w.lower() == "id" else w for w in words)


def _show_plain(doc: dict[str, Any]) -> None:
    """Any flat object as field/value rows (times in UTC)."""
    print_fields([(_label(k), when(v) if k.endswith("_at") else v) for k, v in doc.items()])


# --- projects ------------------------------------------------------------------------------


@command(project_app, "list")
def project_list(
    domain: Annotated[str | None, typer.Option("--domain", "-d", help="Domain id or name.")] = None,
) -> None:
    """List the projects you can see."""
    doc = api().get("/projects", domain_id=domain_id(domain) if domain else None)
    emit(
        doc,
        output(),
        lambda d: print_table(
            ("ID", "NAME", "DOMAIN", "DESCRIPTION", "CREATED"),
            [
                (x["id"], x["name"], x["domain_name"], x["description"], when(x["created_at"]))
                for x in d["items"]
            ],
        ),
    )


@command(project_app, "create")
def project_create(
    name: Annotated[str, typer.Argument(help="Project name (unique in its domain).")],
    domain: Annotated[str, typer.Option("--domain", "-d", help="Domain id or name.")] = "Default",
    description: DescriptionOpt = "",
) -> None:
    """Create a project (sysadmin, or the domain's domainadmin)."""
    body = {"name": name, "domain_id": domain_id(domain), "description": description}
    emit(api().post("/projects", body), output(), _show_plain)


# --- users ---------------------------------------------------------------------------------


@command(user_app, "list")
def user_list(
    domain: Annotated[str | None, typer.Option("--domain", "-d", help="Domain id or name.")] = None,
) -> None:
    """List the users you can see."""
    doc = api().get("/users", domain_id=domain_id(domain) if domain else None)
    domains = _domains() if output().value == "table" else {}
    emit(
        doc,
        output(),
        lambda d: print_table(
            ("ID", "NAME", "DOMAIN", "DISPLAY NAME", "EMAIL", "CREATED"),
            [
                (
                    x["id"],
                    x["name"],
                    domains.get(x["domain_id"], x["domain_id"]),
                    x["display_name"],
                    x["email"],
                    when(x["created_at"]),
                )
                for x in d["items"]
            ],
        ),
    )


@command(user_app, "create")
def user_create(
    name: Annotated[str, typer.Argument(help="User name (unique in its domain).")],
    domain: Annotated[str, typer.Option("--domain", "-d", help="Domain id or name.")] = "Default",
    display_name: Annotated[str, typer.Option(help="Name shown to people.")] = "",
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from standard input.")
    ] = False,
) -> None:
    """Create a user; the password is asked for (twice), read from standard input, or taken
    from HOSTIMAGE_NEW_PASSWORD."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = os.environ.get("HOSTIMAGE_NEW_PASSWORD") or str(
            typer.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
        )
    body = {
        "name": name,
        "domain_id": domain_id(domain),
        "password": password,
        "display_name": display_name,
        "email": email,
    }
    emit(api().post("/users", body), output(), _show_plain)


# --- role assignments ----------------------------------------------------------------------


class Role(StrEnum):
    """The fixed roles."""

    SYSADMIN = "sysadmin"
    DOMAINADMIN = "domainadmin"
    MEMBER = "member"
    VIEWER = "viewer"


@command(role_app, "list")
def role_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="User id or name.")] = None,
) -> None:
    """List role assignments you can see."""
    doc = api().get("/role-assignments", user_id=user_id(user) if user else None)

    def render(d: dict[str, Any]) -> None:
        users = {u["id"]: u["name"] for u in api().get("/users")["items"]}
        projects = {p["id"]: p["name"] for p in api().get("/projects")["items"]}
        domains = _domains()
        rows = []
        for a in d["items"]:
            if a["project_id"]:
                target = f"project {projects.get(a['project_id'], a['project_id'])}"
            elif a["domain_id"]:
                target = f"domain {domains.get(a['domain_id'], a['domain_id'])}"
            else:
                target = "system"
            rows.append(
                (
                    a["id"],
                    users.get(a["user_id"], a["user_id"]),
                    a["role"],
                    target,
                    when(a["created_at"]),
                )
            )
        print_table(("ID", "USER", "ROLE", "SCOPE", "CREATED"), rows)

    emit(doc, output(), render)


@command(role_app, "assign")
def role_assign(
    user: Annotated[str, typer.Argument(help="User id, name or DOMAIN/NAME.")],
    role: Annotated[Role, typer.Argument(help="Role to give.")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project (member, viewer).")
    ] = None,
    domain: Annotated[
        str | None, typer.Option("--domain", "-d", help="Domain (domainadmin).")
    ] = None,
) -> None:
    """Give a user a role: member/viewer in a project, domainadmin of a domain, sysadmin."""
    if role in (Role.MEMBER, Role.VIEWER) and not project:
        raise usage(f"{role.value} needs --project")
    if role is Role.DOMAINADMIN and not domain:
        raise usage("domainadmin needs --domain")
    body: dict[str, Any] = {"user_id": user_id(user), "role": role.value}
    if project and role in (Role.MEMBER, Role.VIEWER):
        body.update(scope="project", project_id=project_id(project))
    elif domain and role is Role.DOMAINADMIN:
        body.update(scope="domain", domain_id=domain_id(domain))
    else:
        body["scope"] = "system"
    emit(api().post("/role-assignments", body), output(), _show_plain)


@command(role_app, "delete")
def role_delete(
    assignment_ids: Annotated[list[str], typer.Argument(metavar="ASSIGNMENT_ID...")],
    yes: YesOpt = False,
) -> None:
    """Revoke role assignments (takes effect on live tokens at once)."""
    confirm(f"Revoke {len(assignment_ids)} role assignment(s)?", yes)
    results = [
        item_result(a, functools.partial(api().delete, f"/role-assignments/{a}"))
        for a in assignment_ids
    ]
    exit_with(report_results(results, verb="revoked"))


# --- settings ------------------------------------------------------------------------------


def _settings_table(doc: dict[str, Any]) -> None:
    print_fields(
        [
            ("Three-level permissions", doc["three_level_permissions"]),
            ("Target formats", doc["target_formats"]),
            ("Max virtual size (GiB)", doc.get("max_virtual_size_gb")),
            ("Max upload size (GiB)", doc.get("max_upload_size_gb")),
        ]
    )


@command(settings_app, "show")
def settings_show() -> None:
    """Show three-level permissions (三级权限), the target formats made after a save and the
    image size limits."""
    emit(api().get("/settings"), output(), _settings_table)


@command(settings_app, "set")
def settings_set(
    three_level: Annotated[
        bool | None,
        typer.Option(
            "--three-level/--no-three-level", help="Turn three-level permissions on or off."
        ),
    ] = None,
    target_formats: Annotated[
        list[str] | None,
        typer.Option(
            "--target-formats",
            metavar="FORMATS",
            help="Formats copied after a save, e.g. qcow2,vmdk (repeatable).",
        ),
    ] = None,
    max_virtual_size_gb: Annotated[
        float | None,
        typer.Option("--max-virtual-size-gb", help="Largest virtual disk of an image, GiB."),
    ] = None,
    max_upload_size_gb: Annotated[
        float | None, typer.Option("--max-upload-size-gb", help="Largest upload, GiB.")
    ] = None,
) -> None:
    """Change settings (sysadmin)."""
    body: dict[str, Any] = {}
    if three_level is not None:
        body["three_level_permissions"] = three_level
    if target_formats is not None:
        body["target_formats"] = split_list(target_formats)
    if max_virtual_size_gb is not None:
        body["max_virtual_size_gb"] = max_virtual_size_gb
    if max_upload_size_gb is not None:
        body["max_upload_size_gb"] = max_upload_size_gb
    if not body:
        raise usage(
            "nothing to change; give --three-level/--no-three-level, --target-formats, "
            "--max-virtual-size-gb or --max-upload-size-gb"
        )
    emit(api().patch("/settings", body), output(), _settings_table)
