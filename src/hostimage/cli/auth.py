"""``login``, ``logout``, ``whoami``, ``switch-project`` and the ``profile`` group."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated, Any

import typer

from hostimage.cli import config
from hostimage.cli.common import YesOpt, api, command, confirm, current, output
from hostimage.cli.errors import ApiError, CliError
from hostimage.cli.output import Output, dump, echo, emit, note, print_fields, print_table, when
from hostimage.cli.resolve import is_id, project

profile_app = typer.Typer(help="Named connection profiles (several servers or users).")


def _password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("--password-stdin: nothing on standard input")
        return line.rstrip("\r\n")
    env = os.environ.get("HOSTIMAGE_PASSWORD")
    if env:
        return env
    return str(typer.prompt("Password", hide_input=True, err=True))


def _store(name: str, base: config.Profile, answer: dict[str, Any]) -> config.Profile:
    """Remember a login/switch answer (token, project, widest view) in profile ``name``."""
    project_ref = answer.get("project") or {}
    profile = config.Profile(
        url=base.url,
        domain=base.domain,
        username=base.username,
        token=answer["token"],
        expires_at=answer.get("expires_at"),
        user_id=(answer.get("user") or {}).get("id"),
        project_id=project_ref.get("id"),
        project_name=project_ref.get("name"),
        highest_view=answer.get("highest_view"),
    )
    cfg = config.load()
    cfg.profiles[name] = profile
    cfg.current = name
    config.save(cfg)
    return profile


def _public(answer: dict[str, Any], profile: str) -> dict[str, Any]:
    """A login answer without the token, plus the profile it was stored in."""
    doc = {k: v for k, v in answer.items() if k != "token"}
    doc["profile"] = profile
    return doc


def register(app: typer.Typer) -> None:
    """Add the session commands and the ``profile`` group to ``app``."""
    command(app, "login")(login)
    command(app, "logout")(logout)
    command(app, "whoami")(whoami)
    command(app, "switch-project")(switch_project)
    app.add_typer(profile_app, name="profile")


def login(
    url: Annotated[
        str | None,
        typer.Option(help="Server URL, e.g. http://cloud.example:8080 (or HOSTIMAGE_URL)."),
    ] = None,
    domain: Annotated[str | None, typer.Option("--domain", "-d", help="Domain name.")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="User name.")] = None,
    project_ref: Annotated[
        str | None, typer.Option("--project", "-p", help="Project (id or name) to work in.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Log in and store the token in a profile (mode 0600).

    The password is asked for, or read from standard input (--password-stdin), or taken from
    HOSTIMAGE_PASSWORD.
    """
    inv = current()
    cfg = config.load()
    name = config.profile_name(inv.profile, cfg)
    stored = cfg.profiles.get(name) or config.Profile()
    fallback = cfg.profiles.get(cfg.current) or config.Profile()  # a new profile: same server
    base_url = config.normalise_url(
        url or os.environ.get("HOSTIMAGE_URL") or stored.url or fallback.url
    )
    if not base_url:
        base_url = config.normalise_url(str(typer.prompt("Server URL", err=True)))
    username = user or stored.username or str(typer.prompt("User", err=True))
    domain_name = domain or stored.domain or "Default"
    body: dict[str, Any] = {
        "username": username,
        "password": _password(password_stdin),
        "domain": domain_name,
    }
    if project_ref and is_id(project_ref):
        body["project_id"] = project_ref
    from hostimage.cli.client import Api

    anonymous = Api(base_url, None, debug=inv.debug)
    try:
        answer = anonymous.post("/auth/login", body)
    finally:
        anonymous.close()
    base = config.Profile(url=base_url, domain=domain_name, username=username)
    profile = _store(name, base, answer)
    if project_ref and not is_id(project_ref):
        inv.refresh()  # use the token just stored
        answer = _switch(name, project(project_ref)["id"])
        profile = config.load().profiles[name]
    if output() is not Output.TABLE:
        dump(_public(answer, name), output())
        return
    echo(
        f"Logged in to {base_url} as {username} (domain {domain_name}), "
        f"project {profile.project_name or '-'}; profile '{name}'."
    )


def _switch(name: str, project_id: str) -> dict[str, Any]:
    inv = current()
    conn = inv.connection()
    old = conn.token
    answer: dict[str, Any] = api().post("/auth/switch", {"project_id": project_id})
    base = conn.stored or config.Profile(url=conn.url)
    _store(name, base, answer)
    if old and not conn.token_from_env:
        with contextlib.suppress(ApiError):
            api().post("/auth/logout")
    return answer


def logout() -> None:
    """Revoke the profile's token on the server and forget it."""
    inv = current()
    conn = inv.connection()
    if conn.token:
        try:
            api().post("/auth/logout")
        except ApiError as exc:
            if exc.status != 401:
                raise
    cfg = config.load()
    if conn.profile in cfg.profiles:
        cfg.profiles[conn.profile].token = None
        cfg.profiles[conn.profile].expires_at = None
        config.save(cfg)
    echo(f"Logged out (profile '{conn.profile}').")


def whoami() -> None:
    """Show the user, current project, roles and views of the token."""
    conn = current().connection()
    me: dict[str, Any] = api().get("/auth/whoami")
    me["profile"] = conn.profile
    me["url"] = conn.url

    def render(doc: dict[str, Any]) -> None:
        projects = {p["id"]: p["name"] for p in api().get("/projects")["items"]}
        domains = {d["id"]: d["name"] for d in api().get("/domains")["items"]}
        roles = []
        for r in doc["roles"]:
            if r.get("project_id"):
                where = f"project {projects.get(r['project_id'], r['project_id'])}"
            elif r.get("domain_id"):
                where = f"domain {domains.get(r['domain_id'], r['domain_id'])}"
            else:
                where = "system"
            roles.append(f"{r['role']} ({where})")
        user = doc["user"]
        proj = doc.get("project") or {}
        print_fields(
            [
                ("Profile", doc["profile"]),
                ("URL", doc["url"]),
                ("User", f"{user['name']} ({user['id']})"),
                ("Domain", domains.get(user["domain_id"], user["domain_id"])),
                ("Project", f"{proj.get('name')} ({proj.get('id')})" if proj else None),
                ("Roles", roles),
                ("Views", doc["views"]),
                ("Token expires", when(conn.stored.expires_at) if conn.stored else None),
            ]
        )

    emit(me, output(), render)


def switch_project(
    project_ref: Annotated[str, typer.Argument(metavar="PROJECT", help="Project id or name.")],
) -> None:
    """Get a token for another project and make it the profile's current one."""
    conn = current().connection()
    answer = _switch(conn.profile, project(project_ref)["id"])
    proj = answer.get("project") or {}
    if output() is not Output.TABLE:
        dump(_public(answer, conn.profile), output())
        return
    echo(f"Now working in project {proj.get('name')} ({proj.get('id')}).")


@command(profile_app, "list")
def profile_list() -> None:
    """List the stored profiles (* marks the current one); tokens are never shown."""
    cfg = config.load()
    doc = {
        "current": cfg.current,
        "profiles": {
            name: {
                "url": p.url,
                "username": p.username,
                "domain": p.domain,
                "project_id": p.project_id,
                "project_name": p.project_name,
                "logged_in": bool(p.token),
                "expires_at": p.expires_at,
            }
            for name, p in sorted(cfg.profiles.items())
        },
    }

    def render(d: dict[str, Any]) -> None:
        rows = [
            (
                "*" if name == d["current"] else " ",
                name,
                p["url"],
                p["username"],
                p["domain"],
                p["project_name"],
                p["logged_in"],
                when(p["expires_at"]),
            )
            for name, p in d["profiles"].items()
        ]
        print_table(
            ("", "PROFILE", "URL", "USER", "DOMAIN", "PROJECT", "LOGGED IN", "EXPIRES"), rows
        )

    emit(doc, output(), render)


@profile_app.command("use")
def profile_use(name: Annotated[str, typer.Argument(help="Profile name.")]) -> None:
    """Make a profile the current one."""
    cfg = config.load()
    if name not in cfg.profiles:
        note(f"error: no profile named {name!r}")
        raise typer.Exit(1)
    cfg.current = name
    config.save(cfg)
    echo(f"Using profile '{name}'.")


@profile_app.command("delete")
def profile_delete(
    name: Annotated[str, typer.Argument(help="Profile name.")], yes: YesOpt = False
) -> None:
    """Forget a profile (its token is not revoked; use 'logout' for that)."""
    cfg = config.load()
    if name not in cfg.profiles:
        note(f"error: no profile named {name!r}")
        raise typer.Exit(1)
    confirm(f"Forget profile '{name}'?", yes)
    del cfg.profiles[name]
    if cfg.current == name:
        cfg.current = config.DEFAULT_PROFILE
    config.save(cfg)
    echo(f"Deleted profile '{name}'.")
