"""Demo data for ``hostimage serve --demo``: tenants, users of every role and host images."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostimage.db.models import Domain, HostImage, Project, RoleAssignment, User
from hostimage.domain.tenancy import Principal
from hostimage.services import identity, images, servers, settings
from hostimage.services.auth import grants_of
from hostimage.services.context import RequestContext
from hostimage.services.host_images import lifecycle, share
from hostimage.storage import Storage

DEMO_PASSWORD = "demo-pass-1"

MiB = 1024 * 1024


@dataclass(frozen=True)
class DemoUser:
    name: str
    domain: str
    role: str
    target: str | None  # project or domain name the role is on


USERS = (
    DemoUser("domadmin", "Default", "domainadmin", "Default"),
    DemoUser("alice", "Default", "member", "dev"),
    DemoUser("victor", "Default", "viewer", "dev"),
    DemoUser("olga", "Default", "member", "ops"),
    DemoUser("eastadmin", "east", "domainadmin", "east"),
    DemoUser("bob", "east", "member", "east-web"),
)

PROJECTS = (
    ("Default", "dev"),
    ("Default", "ops"),
    ("east", "east-web"),
    ("east", "east-db"),
    ("west", "west-app"),
)

HostImageSeed = tuple[str, str, str, str, str, tuple[int, ...], tuple[str, list[str]]]

HOST_IMAGES: tuple[HostImageSeed, ...] = (
    # name, project, os_type, distribution, version, disks (MiB), share
    ("centos7-web", "dev", "Linux", "CentOS", "7.9", (8, 4), ("project", ["ops"])),
    ("ubuntu22-db", "dev", "Linux", "Ubuntu", "22.04", (8, 4, 4), ("none", [])),
    ("win2019-base", "ops", "Windows", "Windows Server", "2019", (12,), ("system", [])),
    ("debian12-app", "east-web", "Linux", "Debian", "12", (8, 2), ("domain", [])),
    ("rocky9-west", "west-app", "Linux", "Rocky", "9.3", (8,), ("domain", ["Default"])),
)


def _disk_bytes(seed: str, mib: int) -> bytes:
    """A small raw disk: an MBR signature and some recognisable content, rest zeros."""
    block = bytearray(mib * MiB)
    block[510:512] = b"\x55\xaa"
    payload = hashlib.sha256(seed.encode()).digest() * 64
    block[MiB : MiB + len(payload)] = payload
    return bytes(block)


def _admin_ctx(session: Session) -> RequestContext:
    admin = session.scalar(select(User).where(User.name == "admin"))
    assert admin is not None
    system = session.scalar(select(Project).where(Project.name == "system"))
    return RequestContext(
        Principal(
            user_id=admin.id,
            user_name=admin.name,
            user_domain_id=admin.domain_id,
            project_id=system.id if system else None,
            project_name="system",
            project_domain_id=system.domain_id if system else None,
            grants=grants_of(session, admin.id),
        ),
        request_id="demo-seed",
    )


def seed_demo(session: Session, storage: Storage) -> bool:
    """Seed the demo catalogue once; False when it is already there."""
    if session.scalar(select(Domain).where(Domain.name == "east")):
        return False
    ctx = _admin_ctx(session)
    settings.update_settings(
        session, ctx, {"three_level_permissions": True, "target_formats": ["qcow2"]}
    )
    domains = {d.name: d.id for d in session.scalars(select(Domain))}
    for name in ("east", "west"):
        domains[name] = identity.create_domain(session, ctx, name, f"Demo domain {name}")["id"]
    projects = {p.name: p.id for p in session.scalars(select(Project))}
    for dname, pname in PROJECTS:
        projects[pname] = identity.create_project(session, ctx, pname, domains[dname], "")["id"]
    for u in USERS:
        user = identity.create_user(
            session, ctx, u.name, domains[u.domain], DEMO_PASSWORD, u.name.capitalize()
        )
        scope = "domain" if u.role == "domainadmin" else "project"
        identity.assign_role(
            session,
            ctx,
            user["id"],
            u.role,
            scope,
            domains.get(u.target or "") if scope == "domain" else None,
            projects.get(u.target or "") if scope == "project" else None,
        )
    host_images: dict[str, str] = {}
    for name, pname, os_type, dist, version, disks, (scope, targets) in HOST_IMAGES:
        image_ids = []
        for i, mib in enumerate(disks):
            img = images.create_image(
                session, ctx, f"{name}-disk{i}", "raw", os_type=os_type, project_id=projects[pname]
            )
            data = _disk_bytes(f"{name}-{i}", mib)
            images.upload_data(
                session,
                storage,
                ctx,
                img["id"],
                (data[o : o + MiB] for o in range(0, len(data), MiB)),
                "demo",
            )
            image_ids.append(img["id"])
        hi = lifecycle.compose_host_image(
            session,
            ctx,
            name,
            image_ids,
            project_id=projects[pname],
            attributes={
                "os_type": os_type,
                "os_distribution": dist,
                "os_version": version,
                "os_arch": "x86_64",
                "hypervisor": "kvm",
                "boot_mode": "bios",
                "min_ram_mb": 1024,
                "description": f"Demo {dist} {version}",
            },
        )
        if scope == "project":
            share.share_host_image(session, ctx, hi["id"], scope, [projects[t] for t in targets])
        elif scope == "domain":
            share.share_host_image(
                session, ctx, hi["id"], scope, None, [domains[t] for t in targets] or None
            )
        elif scope != "none":
            share.share_host_image(session, ctx, hi["id"], scope)
        host_images[name] = hi["id"]
    # VMs: their disk files are built by the task workers once the server has started.
    servers.create_server(
        session,
        ctx,
        servers.ServerSpec(
            name="web-template",
            project_id=projects["dev"],
            host_image_id=host_images["centos7-web"],
            hostname="web-template",
            login_user="root",
        ),
    )
    servers.create_server(
        session,
        ctx,
        servers.ServerSpec(
            name="db-01",
            project_id=projects["dev"],
            os_type="Linux",
            disks=(servers.DiskSpec(size_mb=64), servers.DiskSpec(size_mb=32)),
        ),
    )
    servers.create_server(
        session,
        ctx,
        servers.ServerSpec(
            name="east-app-01",
            project_id=projects["east-web"],
            host_image_id=host_images["debian12-app"],
            hostname="east-app-01",
        ),
    )
    assert session.scalar(select(HostImage.id).limit(1))
    assert session.scalar(select(RoleAssignment.id).limit(1))
    return True
