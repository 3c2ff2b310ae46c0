"""Servers (VMs): list, create (blank, from images, from a host image), start/stop, delete,
and the request to save a host image from a stopped server (F1, F11) — on the built-in
inventory or a libvirt host (SPEC §9.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from hostimage.compute.model import DomainNotFound, DomainState
from hostimage.db.base import new_id, utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Host, HostImage, Image, Project, Server, ServerDisk, Task
from hostimage.db.queue import enqueue
from hostimage.db.scoping import server_view_filter, server_visible, visible
from hostimage.domain.formats import resolve_drivers
from hostimage.domain.naming import sub_image_name
from hostimage.domain.permissions import Action, authorize, authorize_change_project
from hostimage.domain.sharing import Owner
from hostimage.domain.status import ImageStatus, ServerStatus, TaskStatus
from hostimage.domain.tenancy import View
from hostimage.errors import Conflict, Invalid, NotFound, ValidationFailed
from hostimage.imaging.netconfig import StaticNetwork
from hostimage.services import oplog
from hostimage.services.context import RequestContext
from hostimage.services.host_images.common import name_taken, refresh_derived
from hostimage.services.host_images.lifecycle import target_project
from hostimage.services.host_images.read import contains
from hostimage.services.hosts import BUILTIN, domain_state
from hostimage.services.settings import three_level

MiB = 1024 * 1024


def server_dict(server: Server, disks: list[ServerDisk]) -> dict[str, Any]:
    """A server as the API answers it."""
    return {
        "id": server.id,
        "name": server.name,
        "host_id": server.host_id,
        "external_id": server.external_id,
        "created_here": server.created_here,
        "status": server.status,
        "status_reason": server.status_reason,
        "domain_id": server.domain_id,
        "project_id": server.project_id,
        "os_type": server.os_type,
        "hostname": server.hostname,
        "login_user": server.login_user,
        "disk_driver": server.disk_driver,
        "net_driver": server.net_driver,
        "host_image_id": server.host_image_id,
        "disks": [
            {
                "index": d.idx,
                "target": d.target,
                "size": d.size,
                "format": d.format,
                "pool": d.pool,
                "volume": d.volume,
                "source_image_id": d.source_image_id,
            }
            for d in sorted(disks, key=lambda d: d.idx)
        ],
        "created_at": server.created_at,
        "updated_at": server.updated_at,
    }


def of_server(server: Server) -> oplog.LoggedObject:
    return oplog.LoggedObject(
        "server", server.id, server.name, server.id, server.domain_id, server.project_id
    )


def _disks(session: Session, server_ids: list[str]) -> dict[str, list[ServerDisk]]:
    out: dict[str, list[ServerDisk]] = {sid: [] for sid in server_ids}
    if server_ids:
        for d in session.scalars(select(ServerDisk).where(ServerDisk.server_id.in_(server_ids))):
            out[d.server_id].append(d)
    return out


def _visible_server(
    session: Session, ctx: RequestContext, server_id: str, lock: bool = False
) -> Server:
    if lock:
        begin_write(session)
    q = select(Server).where(Server.id == server_id, server_visible(ctx.principal))
    server = session.scalar(q.with_for_update() if lock else q)
    if server is None:
        raise NotFound(f"Server {server_id} not found.")
    return server


def get_server(session: Session, ctx: RequestContext, server_id: str) -> dict[str, Any]:
    """A visible server with its disks (404 otherwise)."""
    server = _visible_server(session, ctx, server_id)
    return server_dict(server, _disks(session, [server.id])[server.id])


def list_servers(
    session: Session,
    ctx: RequestContext,
    view: View,
    limit: int,
    offset: int,
    name: str | None = None,
    status: str | None = None,
    host_id: str | None = None,
) -> dict[str, Any]:
    """Servers of a view, newest first, with the total; ``host_id`` keeps one host's."""
    ctx.principal.check_view(view)
    conds = [server_view_filter(ctx.principal, view)]
    if host_id:
        conds.append(Server.host_id == host_id)
    if name:
        conds.append(contains(Server.name, name))
    if status:
        conds.append(Server.status == status)
    where = and_(*conds)
    total = session.scalar(select(func.count()).select_from(Server).where(where)) or 0
    rows = list(
        session.scalars(
            select(Server)
            .where(where)
            .order_by(Server.created_at.desc(), Server.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    disks = _disks(session, [s.id for s in rows])
    return {
        "items": [server_dict(s, disks[s.id]) for s in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@dataclass(frozen=True)
class DiskSpec:
    size_mb: int | None = None
    image_id: str | None = None


@dataclass(frozen=True)
class ServerSpec:
    name: str
    project_id: str | None = None
    disks: tuple[DiskSpec, ...] = ()
    host_image_id: str | None = None
    hostname: str | None = None
    login_user: str | None = None
    password_hash: str | None = None
    ssh_public_key: str | None = None
    os_type: str | None = None
    # A static address for the first interface: {address, gateway?, dns?}; without it the
    # network configs of the template are reset to DHCP.
    network: dict[str, Any] | None = None
    host_id: str = "builtin"
    start: bool = False
    vcpus: int = 1
    memory_mb: int = 1024


def create_server(session: Session, ctx: RequestContext, spec: ServerSpec) -> dict[str, Any]:
    """Register a server (``creating``) and enqueue the task that builds its disk files.

    With ``host_image_id`` the disks come from its sub-images in order and ``disks`` adds
    extra blank ones; the template's identity is replaced (hostname, machine-id, login).
    """
    begin_write(session)
    project = target_project(session, ctx, spec.project_id)
    authorize(ctx.principal, Action.CREATE, Owner(project.domain_id, project.id))
    if spec.host_id != BUILTIN and session.get(Host, spec.host_id) is None:
        raise Invalid(f"Unknown host {spec.host_id}.", code="unknown_host")
    sources: list[tuple[int, str | None]] = []  # (virtual size, image id)
    os_type = spec.os_type
    drivers = ("auto", "auto")
    hypervisor: str | None = None
    if spec.host_image_id:
        # FOR SHARE: a concurrent delete of the image waits until this server is recorded,
        # and its purge then waits for the server's build (wait_for_builds).
        hi = session.scalar(
            select(HostImage)
            .where(HostImage.id == spec.host_image_id, visible(HostImage, ctx.principal))
            .with_for_update(read=True)
        )
        if hi is None:
            raise Invalid(f"Unknown host image {spec.host_image_id}.", code="unknown_host_image")
        if hi.status != ImageStatus.ACTIVE:
            raise Conflict("The host image is not active.", code="image_not_active")
        subs = session.scalars(
            select(Image)
            .where(Image.host_image_id == hi.id)
            .order_by(Image.idx)
            .with_for_update(read=True)
        )
        sources.extend((s.virtual_size, s.id) for s in subs)
        os_type = os_type or hi.os_type
        drivers, hypervisor = (hi.disk_driver, hi.net_driver), hi.hypervisor
    for d in spec.disks:
        if d.image_id:
            img = session.scalar(
                select(Image)
                .where(Image.id == d.image_id, visible(Image, ctx.principal))
                .with_for_update(read=True)
            )
            if img is None:
                raise Invalid(f"Unknown image {d.image_id}.", code="unknown_image")
            if img.status != ImageStatus.ACTIVE:
                raise Conflict(f"Image {img.id} is not active.", code="image_not_active")
            sources.append((img.virtual_size, img.id))
            os_type = os_type or img.os_type
        elif d.size_mb:
            sources.append((d.size_mb * MiB, None))
        else:
            raise ValidationFailed("Each disk needs size_mb or image_id.")
    if not sources:
        raise ValidationFailed("A server needs at least one disk (or a host image).")
    if (
        (spec.password_hash or spec.ssh_public_key or spec.network)
        and not spec.host_image_id
        and not any(iid for _, iid in sources[:1])
    ):
        raise Invalid("A password, key or network needs a system disk from an image.", code="no_os")
    network = static_network(spec.network)
    auto_disk, auto_net = resolve_drivers(os_type, hypervisor)
    server = Server(
        host_id=spec.host_id,
        disk_driver=auto_disk if drivers[0] == "auto" else drivers[0],
        net_driver=auto_net if drivers[1] == "auto" else drivers[1],
        name=spec.name,
        status=ServerStatus.CREATING.value,
        domain_id=project.domain_id,
        project_id=project.id,
        os_type=os_type,
        hostname=spec.hostname or spec.name,
        login_user=spec.login_user,
        host_image_id=spec.host_image_id,
    )
    session.add(server)
    session.flush()
    for idx, (size, image_id) in enumerate(sources):
        session.add(
            ServerDisk(
                server_id=server.id,
                idx=idx,
                size=size,
                format="qcow2",
                path=f"{server.id}/disk{idx}.qcow2" if spec.host_id == BUILTIN else None,
                source_image_id=image_id,
            )
        )
    oplog.record(
        session,
        ctx,
        of_server(server),
        "create",
        notes={
            "host_image_id": spec.host_image_id,
            "disks": len(sources),
            "host_id": spec.host_id,
        },
    )
    task = enqueue(
        session,
        "create_server",
        "server",
        server.id,
        project_id=project.id,
        payload={
            "password_hash": spec.password_hash,
            "ssh_public_key": spec.ssh_public_key,
            "network": network,
            "deploy_identity": bool(
                spec.host_image_id or spec.password_hash or spec.ssh_public_key or network
            ),
            "start": spec.start,
            "vcpus": spec.vcpus,
            "memory_mb": spec.memory_mb,
        },
    )
    session.commit()
    return {"task_id": task.id, **get_server(session, ctx, server.id)}


def static_network(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """The static address of a server request, validated and normalised (422
    ``invalid_network`` otherwise), as the task's payload carries it."""
    if body is None:
        return None
    unknown = set(body) - {"address", "gateway", "dns"}
    if unknown or "address" not in body:
        raise ValidationFailed("network takes address, and optionally gateway and dns.")
    net = StaticNetwork(
        address=str(body["address"]),
        gateway=None if body.get("gateway") is None else str(body["gateway"]),
        dns=tuple(str(d) for d in body.get("dns") or ()),
    )
    return {"address": net.address, "gateway": net.gateway, "dns": list(net.dns)}


POWER_TASK = "power_server"


def _pending_power(session: Session, server_id: str, start: bool) -> str | None:
    """A queued or running power task of the server going the same way, if any."""
    rows = session.execute(
        select(Task.id, Task.payload).where(
            Task.kind == POWER_TASK,
            Task.target_id == server_id,
            Task.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]),
        )
    )
    return next((tid for tid, payload in rows if bool((payload or {}).get("start")) == start), None)


def set_power(session: Session, ctx: RequestContext, server_id: str, start: bool) -> dict[str, Any]:
    """Start (ready → running) or stop (running → ready) a server; 409 from other states.
    On a libvirt host a task starts the domain, or shuts it down gracefully (destroying it
    after a timeout), and the answer carries its ``task_id``."""
    server = _visible_server(session, ctx, server_id, lock=True)
    want_from, to = (
        (ServerStatus.READY.value, ServerStatus.RUNNING.value)
        if start
        else (ServerStatus.RUNNING.value, ServerStatus.READY.value)
    )
    with oplog.refusals_logged(session, ctx, of_server(server), "update"):
        authorize(ctx.principal, Action.UPDATE, Owner(server.domain_id, server.project_id))
        if server.status not in (want_from, to):
            raise Conflict(f"The server is {server.status}.", code="bad_status")
    if server.host_id != BUILTIN:
        task_id = _pending_power(session, server.id, start)
        if task_id is None:
            task_id = enqueue(
                session,
                POWER_TASK,
                "server",
                server.id,
                project_id=server.project_id,
                payload={"start": start},
            ).id
            oplog.record(
                session,
                ctx,
                of_server(server),
                "update",
                notes={"power": "start" if start else "stop"},
            )
        session.commit()
        return {**get_server(session, ctx, server_id), "task_id": task_id}
    if server.status == to:
        session.rollback()
        return get_server(session, ctx, server_id)
    old, server.status, server.updated_at = server.status, to, utcnow()
    oplog.record(
        session, ctx, of_server(server), "update", notes={"changes": {"status": [old, to]}}
    )
    session.commit()
    return get_server(session, ctx, server_id)


def delete_server(session: Session, ctx: RequestContext, server_id: str) -> dict[str, Any]:
    """Delete a stopped server: rows now, its disks in a task. Host images made from it keep
    working. On a libvirt host the task undefines the domain and deletes the volumes the
    service created; a domain the service did not create is never touched: its server can
    only be forgotten once the domain is gone (``missing``)."""
    server = _visible_server(session, ctx, server_id, lock=True)
    with oplog.refusals_logged(session, ctx, of_server(server), "delete"):
        authorize(ctx.principal, Action.DELETE, Owner(server.domain_id, server.project_id))
        if server.status in (ServerStatus.CREATING, ServerStatus.SAVING, ServerStatus.RUNNING):
            raise Conflict(f"The server is {server.status}; stop it or wait.", code="bad_status")
        if not server.created_here and server.status != ServerStatus.MISSING:
            raise Conflict(
                "The service did not create this VM's domain and never deletes it; undefine "
                "it on its host, then sync the host, to remove the server.",
                code="not_created_here",
            )
    disks = _disks(session, [server.id])[server.id]
    oplog.record(session, ctx, of_server(server), "delete")
    payload: dict[str, Any] | None = None
    if server.host_id == BUILTIN:
        payload = {"paths": [d.path for d in disks if d.path]}
    elif server.created_here:
        host = session.get(Host, server.host_id)
        if host is None:
            raise Conflict("The server's host is no longer registered.", code="unknown_host")
        payload = {
            "uri": host.uri,
            "domain": server.external_id,
            "volumes": [
                {"pool": d.pool or host.storage_pool, "name": d.volume or "", "path": d.path or ""}
                for d in disks
            ],
            "server_id": server.id,
            "pool": host.storage_pool,
            "disks": len(disks),
        }
    task_id = None
    if payload is not None:
        task = enqueue(
            session,
            "delete_server_disks",
            "server",
            server.id,
            project_id=server.project_id,
            payload=payload,
        )
        task_id = task.id
    session.execute(delete(ServerDisk).where(ServerDisk.server_id == server.id))
    session.delete(server)
    session.commit()
    return {"task_id": task_id}


def change_project(
    session: Session, ctx: RequestContext, server_id: str, project_id: str
) -> dict[str, Any]:
    """Move a server to another project: a domain found on a host starts in the host's
    project, and an administrator gives it to the project that uses it. Sysadmin anywhere,
    domain admin within its domain (as for host images, F5); 409 while it is being created
    or saved."""
    server = _visible_server(session, ctx, server_id, lock=True)
    target = session.get(Project, project_id)
    with oplog.refusals_logged(session, ctx, of_server(server), "change_project"):
        owner = Owner(server.domain_id, server.project_id)
        if target is None:
            authorize(ctx.principal, Action.CHANGE_PROJECT, owner)
            raise Invalid(f"Unknown project {project_id}.", code="unknown_project")
        authorize_change_project(ctx.principal, owner, Owner(target.domain_id, target.id))
        if server.status in (ServerStatus.CREATING, ServerStatus.SAVING):
            raise Conflict(f"The server is {server.status}; wait for it.", code="bad_status")
    if target.id == server.project_id:
        session.rollback()
        return get_server(session, ctx, server_id)
    old = server.project_id
    server.project_id, server.domain_id, server.updated_at = target.id, target.domain_id, utcnow()
    oplog.record(
        session,
        ctx,
        of_server(server),
        "change_project",
        notes={"changes": {"project_id": [old, target.id]}},
    )
    session.commit()
    return get_server(session, ctx, server_id)


def refresh_state(session: Session, ctx: RequestContext, server_id: str) -> None:
    """Bring a libvirt server's status in line with its domain's state as the host tells it
    now (503 ``host_unreachable`` when it does not answer). Built-in servers: nothing."""
    server = _visible_server(session, ctx, server_id)
    if server.host_id == BUILTIN or not server.external_id:
        session.rollback()
        return
    host = session.get(Host, server.host_id)
    if host is None or server.status not in (ServerStatus.READY, ServerStatus.RUNNING):
        session.rollback()
        return
    uri, domain = host.uri, server.external_id
    session.rollback()  # the host is asked outside any transaction
    try:
        state = domain_state(uri, domain)
    except DomainNotFound:
        want = ServerStatus.MISSING
    else:
        want = ServerStatus.READY if state == DomainState.SHUTOFF else ServerStatus.RUNNING
    server = _visible_server(session, ctx, server_id, lock=True)
    if server.status in (ServerStatus.READY, ServerStatus.RUNNING) and server.status != want:
        server.status, server.updated_at = want.value, utcnow()
        server.status_reason = (
            f"The domain is no longer defined on host {host.name}."
            if want == ServerStatus.MISSING
            else None
        )
    session.commit()


def save_host_image(
    session: Session,
    ctx: RequestContext,
    server_id: str,
    name: str,
    *,
    description: str = "",
    protected: bool = True,
    auto_start: bool = False,
) -> dict[str, Any]:
    """F1: the server must be stopped (409 otherwise); a host image with one queued sub-image
    per disk is created in the server's project and a save task is enqueued. A libvirt
    server's state is read from its host first: a domain shut off a moment ago can be saved."""
    refresh_state(session, ctx, server_id)
    server = _visible_server(session, ctx, server_id, lock=True)
    owner = Owner(server.domain_id, server.project_id)
    with oplog.refusals_logged(session, ctx, of_server(server), "save"):
        authorize(ctx.principal, Action.SAVE, owner)
        if server.status != ServerStatus.READY:
            raise Conflict(
                f"Stop the server first; it is {server.status}.", code="server_not_stopped"
            )
        if name_taken(session, name, server.domain_id, three_level(session)):
            raise Conflict(f"A host image named {name!r} exists.", code="name_taken")
    disks = sorted(_disks(session, [server.id])[server.id], key=lambda d: d.idx)
    now = utcnow()
    hi = HostImage(
        id=new_id(),
        name=name,
        description=description,
        protected=protected,
        domain_id=server.domain_id,
        project_id=server.project_id,
        is_standard=True,
        os_type=server.os_type,
        source_server_id=server.id,
        created_at=now,
        updated_at=now,
    )
    session.add(hi)
    session.flush()
    subs = [
        Image(
            name=sub_image_name(name, d.idx),
            domain_id=server.domain_id,
            project_id=server.project_id,
            disk_format="qcow2",
            virtual_size=d.size,
            size=0,
            status=ImageStatus.QUEUED.value,
            share_scope="none",
            host_image_id=hi.id,
            idx=d.idx,
            role="root" if d.idx == 0 else "data",
            os_type=server.os_type,
            created_at=now,
            updated_at=now,
        )
        for d in disks
    ]
    session.add_all(subs)
    refresh_derived(hi, subs)
    server.status, server.updated_at = ServerStatus.SAVING.value, now
    oplog.record(
        session,
        ctx,
        oplog.of_host_image(hi),
        "save",
        notes={"server_id": server.id, "disks": len(disks), "stage": "queued"},
    )
    task = enqueue(
        session,
        "save_host_image",
        "host_image",
        hi.id,
        project_id=hi.project_id,
        payload={"server_id": server.id, "auto_start": auto_start},
    )
    session.commit()
    return {"task_id": task.id, "host_image_id": hi.id}
