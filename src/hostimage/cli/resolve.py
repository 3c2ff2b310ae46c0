"""Accept names where ids are expected: ``dev``, ``east/east-web``, ``centos7-web``.

An argument that looks like an id (32 hex characters) is passed through unchanged, so the
server decides about it; anything else is looked up by exact name among the objects the
caller can see. ``DOMAIN/NAME`` picks a project or user of one domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from hostimage.cli.common import api, current
from hostimage.cli.errors import CliError

_ID = re.compile(r"^[0-9a-f]{32}$")


def is_id(ref: str) -> bool:
    """Whether ``ref`` has the shape of an object id."""
    return bool(_ID.match(ref))


def _pick(kind: str, ref: str, matches: list[dict[str, Any]]) -> dict[str, Any]:
    if not matches:
        raise CliError(f"no {kind} named {ref!r} is visible to you")
    if len(matches) > 1:
        ids = ", ".join(m["id"] for m in matches)
        raise CliError(f"several {kind}s are named {ref!r} ({ids}); give the id")
    return matches[0]


def _scoped(items: Iterable[dict[str, Any]], ref: str, domains: dict[str, str]) -> list[Any]:
    domain, _, name = ref.rpartition("/")
    found = []
    for item in items:
        if item.get("name") != name:
            continue
        if domain and domains.get(item.get("domain_id", "")) != domain:
            continue
        found.append(item)
    return found


def _domain_names() -> dict[str, str]:
    return {d["id"]: d["name"] for d in api().get("/domains")["items"]}


def domain_id(ref: str) -> str:
    """A domain id from an id or a domain name."""
    if is_id(ref):
        return ref
    items = api().get("/domains")["items"]
    return str(_pick("domain", ref, [d for d in items if d["name"] == ref])["id"])


def project(ref: str) -> dict[str, Any]:
    """A visible project (``{id, name, …}``) from an id, a name or ``DOMAIN/NAME``."""
    items = api().get("/projects")["items"]
    if is_id(ref):
        for p in items:
            if p["id"] == ref:
                return dict(p)
        return {"id": ref, "name": None}
    domains = _domain_names() if "/" in ref else {}
    return dict(_pick("project", ref, _scoped(items, ref, domains)))


def project_id(ref: str) -> str:
    """A project id from an id, a name or ``DOMAIN/NAME``."""
    return ref if is_id(ref) else str(project(ref)["id"])


def user_id(ref: str) -> str:
    """A user id from an id, a name or ``DOMAIN/NAME``."""
    if is_id(ref):
        return ref
    items = api().get("/users")["items"]
    domains = _domain_names() if "/" in ref else {}
    return str(_pick("user", ref, _scoped(items, ref, domains))["id"])


def _by_name(path: str, kind: str, ref: str, **params: Any) -> tuple[str, str]:
    view = current().highest_view()
    page = api().get(path, scope=view, name=ref, limit=1000, **params)
    hit = _pick(kind, ref, [i for i in page["items"] if i["name"] == ref])
    return str(hit["id"]), str(hit["name"])


def host_image(ref: str) -> tuple[str, str | None]:
    """``(id, name)`` of a host image given by id (name unknown) or by exact name."""
    return (ref, None) if is_id(ref) else _by_name("/host-images", "host image", ref)


def host_images(refs: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Ids (duplicates dropped, order kept) and the names that were given."""
    ids: list[str] = []
    names: dict[str, str] = {}
    for ref in refs:
        hid, name = host_image(ref)
        if hid not in ids:
            ids.append(hid)
        if name:
            names[hid] = name
    return ids, names


def image(ref: str) -> str:
    """An image id from an id or an exact image name."""
    return ref if is_id(ref) else _by_name("/images", "image", ref)[0]


def server(ref: str) -> str:
    """A server id from an id or an exact server name."""
    return ref if is_id(ref) else _by_name("/servers", "server", ref)[0]


BUILTIN_HOST = "builtin"


def host(ref: str) -> tuple[str, str | None]:
    """``(id, name)`` of a compute host given by id (name unknown) or by exact name; the
    built-in inventory is ``builtin`` by both."""
    if ref == BUILTIN_HOST:
        return ref, ref
    if is_id(ref):
        return ref, None
    hit = _pick("host", ref, [h for h in api().pages("/hosts", 1000) if h["name"] == ref])
    return str(hit["id"]), str(hit["name"])


def host_id(ref: str) -> str:
    """A compute host id from an id or an exact host name."""
    return host(ref)[0]
