"""Compute hosts (SPEC §9.2): register, change, sync and remove libvirt hosts. The built-in
inventory is the host ``builtin``; it always exists and cannot be changed or removed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hostimage.compute.libvirt_host import LibvirtHost
from hostimage.compute.model import ComputeError, DomainState, HostFacts
from hostimage.db.base import new_id, utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Host, Project, Server, ServerDisk
from hostimage.db.queue import enqueue, pending_for
from hostimage.domain.permissions import authorize_manage_hosts
from hostimage.domain.status import HostStatus, ServerStatus
from hostimage.errors import Conflict, HostUnavailable, Invalid, NotFound, ValidationFailed
from hostimage.services.context import RequestContext

BUILTIN = "builtin"
SYNC_TASK = "sync_host"
# How long registering a host waits for it to answer before calling it unreachable.
PROBE_SECONDS = 10.0
# Hosts are created at service start; the built-in one shows when the service started.
_STARTED = utcnow()


def builtin_host() -> dict[str, Any]:
    """The built-in inventory as a host."""
    return {
        "id": BUILTIN,
        "name": BUILTIN,
        "driver": "builtin",
        "uri": None,
        "domain_id": None,
        "project_id": None,
        "storage_pool": None,
        "network": None,
        "status": HostStatus.CONNECTED.value,
        "status_reason": None,
        "versions": {},
        "synced_at": None,
        "created_at": _STARTED,
        "updated_at": _STARTED,
    }


def host_dict(host: Host) -> dict[str, Any]:
    """A host as the API answers it."""
    return {
        "id": host.id,
        "name": host.name,
        "driver": host.driver,
        "uri": host.uri,
        "domain_id": host.domain_id,
        "project_id": host.project_id,
        "storage_pool": host.storage_pool,
        "network": host.network,
        "status": host.status,
        "status_reason": host.status_reason,
        "versions": dict(host.versions or {}),
        "synced_at": host.synced_at,
        "created_at": host.created_at,
        "updated_at": host.updated_at,
    }


# What every signed-in user may see of a host: enough to choose one for a new VM.
PUBLIC_FIELDS = ("id", "name", "driver", "status")


def _shown(ctx: RequestContext, host: dict[str, Any], servers: int) -> dict[str, Any]:
    if ctx.principal.is_sysadmin:
        return {**host, "servers": servers}
    return {k: (host[k] if k in PUBLIC_FIELDS else None) for k in host} | {"servers": None}


def _server_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Server.host_id, func.count()).group_by(Server.host_id))
    return {host_id: n for host_id, n in rows}


def list_hosts(session: Session, ctx: RequestContext, limit: int, offset: int) -> dict[str, Any]:
    """Every host, the built-in one first, then by name. Every signed-in user may list them
    (to choose where a VM goes); only system administrators see URIs, pools and networks."""
    counts = _server_counts(session)
    rows = list(session.scalars(select(Host).order_by(Host.name, Host.id)))
    hosts = [builtin_host()] + [host_dict(h) for h in rows]
    page = hosts[offset : offset + limit]
    return {
        "items": [_shown(ctx, h, counts.get(h["id"], 0)) for h in page],
        "total": len(hosts),
        "limit": limit,
        "offset": offset,
    }


def get_host(session: Session, ctx: RequestContext, host_id: str) -> dict[str, Any]:
    """One host (404 when unknown)."""
    if host_id == BUILTIN:
        host = builtin_host()
    else:
        row = session.get(Host, host_id)
        if row is None:
            raise NotFound(f"Host {host_id} not found.")
        host = host_dict(row)
    counts = session.scalar(select(func.count()).where(Server.host_id == host_id)) or 0
    return _shown(ctx, host, counts)


@dataclass(frozen=True)
class HostSpec:
    name: str | None = None
    uri: str | None = None
    project_id: str | None = None
    storage_pool: str | None = None
    network: str | None = None
    network_set: bool = False  # True when the request names the network (null clears it)


@dataclass(frozen=True)
class Probe:
    status: HostStatus
    reason: str | None
    versions: dict[str, str]


T = TypeVar("T")


def _within(timeout: float, name: str, work: Callable[[LibvirtHost], T], uri: str) -> T:
    """``work`` on a connection to ``uri``, waiting at most ``timeout`` seconds (an address
    that drops packets would otherwise hold the request for minutes): HostUnavailable then."""
    result: list[T | BaseException] = []

    def attempt() -> None:
        try:
            with LibvirtHost(uri) as host:
                result.append(work(host))
        except BaseException as exc:  # handed to the caller
            result.append(exc)

    thread = threading.Thread(target=attempt, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        raise HostUnavailable(f"The host did not answer within {timeout:g} s.")
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def probe(uri: str, timeout: float = PROBE_SECONDS) -> Probe:
    """Connect to ``uri`` and read its versions (at most ``timeout`` seconds); a host that
    does not answer is ``unreachable`` with the reason."""
    try:
        facts = _within(timeout, "host-probe", lambda host: host.facts(), uri)
    except (ComputeError, HostUnavailable) as exc:
        return Probe(HostStatus.UNREACHABLE, str(exc), {})
    return Probe(HostStatus.CONNECTED, None, versions_of(facts))


def domain_state(uri: str, domain: str, timeout: float = PROBE_SECONDS) -> DomainState:
    """The state of ``domain`` on the host at ``uri`` now, waiting at most ``timeout``
    seconds (:class:`HostUnavailable` then); :class:`DomainNotFound` when it is gone."""
    return _within(timeout, "domain-state", lambda host: host.domain(domain).state, uri)


def versions_of(facts: HostFacts) -> dict[str, str]:
    """The ``versions`` a host answers (SPEC §9.2)."""
    return {"libvirt": facts.libvirt, "hypervisor": facts.hypervisor}


def _check_uri(uri: str) -> str:
    uri = uri.strip()
    if not uri or "://" not in uri or any(c.isspace() for c in uri):
        raise ValidationFailed(
            "uri must be a libvirt URI such as qemu:///system, qemu+ssh://user@host/system "
            "or qemu+tcp://host/system."
        )
    if uri.startswith("test://"):
        return uri  # libvirt's test driver: for trying the service without a hypervisor
    if not uri.split("://", 1)[0].split("+", 1)[0] == "qemu":
        raise ValidationFailed("Only QEMU/KVM hosts are supported: the URI starts with qemu.")
    return uri


def _project(session: Session, project_id: str | None) -> Project:
    project = session.get(Project, project_id) if project_id else None
    if project is None:
        raise Invalid("No such project for the host's domains.", code="unknown_project")
    return project


def _name_free(session: Session, name: str, host_id: str | None) -> None:
    if name == BUILTIN:
        raise Conflict("The name builtin is the built-in inventory's.", code="name_taken")
    other = session.scalar(select(Host.id).where(Host.name == name))
    if other is not None and other != host_id:
        raise Conflict(f"A host named {name!r} exists.", code="name_taken")


def add_host(session: Session, ctx: RequestContext, spec: HostSpec) -> dict[str, Any]:
    """Register a libvirt host. It is probed at once (an unreachable host is still added,
    with the reason) and a sync of its domains is queued."""
    authorize_manage_hosts(ctx.principal)
    if not spec.name or not spec.uri or not spec.storage_pool:
        raise ValidationFailed("A host needs name, uri, project_id and storage_pool.")
    uri = _check_uri(spec.uri)
    _project(session, spec.project_id)  # refuse a bad request before waiting for the host
    # The probe talks to the host: outside any transaction.
    session.rollback()
    found = probe(uri)
    begin_write(session)
    project = _project(session, spec.project_id)
    _name_free(session, spec.name, None)
    now = utcnow()
    host = Host(
        id=new_id(),
        name=spec.name,
        driver="libvirt",
        uri=uri,
        domain_id=project.domain_id,
        project_id=project.id,
        storage_pool=spec.storage_pool,
        network=spec.network,
        status=found.status.value,
        status_reason=found.reason,
        versions=found.versions,
        created_at=now,
        updated_at=now,
    )
    session.add(host)
    session.flush()
    enqueue(session, SYNC_TASK, "host", host.id)
    session.commit()
    return get_host(session, ctx, host.id)


def _host_row(session: Session, host_id: str, lock: bool = False) -> Host:
    if host_id == BUILTIN:
        raise Conflict("The built-in inventory cannot be changed or removed.", code="builtin_host")
    q = select(Host).where(Host.id == host_id)
    host = session.scalar(q.with_for_update() if lock else q)
    if host is None:
        raise NotFound(f"Host {host_id} not found.")
    return host


def update_host(
    session: Session, ctx: RequestContext, host_id: str, spec: HostSpec
) -> dict[str, Any]:
    """Change a host's name, URI, default project, pool or network. A new URI is probed and
    the host synced again; servers already found keep their projects."""
    authorize_manage_hosts(ctx.principal)
    uri = _check_uri(spec.uri) if spec.uri is not None else None
    _host_row(session, host_id)  # refuse an unknown host before waiting for a new URI
    session.rollback()
    found = probe(uri) if uri is not None else None
    begin_write(session)
    host = _host_row(session, host_id, lock=True)
    if spec.name is not None and spec.name != host.name:
        _name_free(session, spec.name, host.id)
        host.name = spec.name
    if spec.project_id is not None:
        project = _project(session, spec.project_id)
        host.project_id, host.domain_id = project.id, project.domain_id
    if spec.storage_pool is not None:
        host.storage_pool = spec.storage_pool
    if spec.network_set:
        host.network = spec.network
    if uri is not None and found is not None and uri != host.uri:
        host.uri = uri
        host.status, host.status_reason = found.status.value, found.reason
        host.versions = found.versions
        if not pending_for(session, SYNC_TASK, host.id):
            enqueue(session, SYNC_TASK, "host", host.id)
    host.updated_at = utcnow()
    session.commit()
    return get_host(session, ctx, host_id)


def delete_host(session: Session, ctx: RequestContext, host_id: str) -> None:
    """Forget a host and the servers found on it. Refused (409 ``host_in_use``) while it
    holds VMs the service created (their volumes would be stranded) or while a server on it
    is being saved or built."""
    authorize_manage_hosts(ctx.principal)
    begin_write(session)
    host = _host_row(session, host_id, lock=True)
    busy = session.scalar(
        select(Server.name)
        .where(
            Server.host_id == host.id,
            (Server.created_here.is_(True))
            | Server.status.in_([ServerStatus.SAVING.value, ServerStatus.CREATING.value]),
        )
        .limit(1)
    )
    if busy is not None:
        raise Conflict(
            f"Server {busy!r} on this host was created by the service or is busy; delete it "
            "(or wait for it) first.",
            code="host_in_use",
        )
    found = select(Server.id).where(Server.host_id == host.id)
    session.execute(delete(ServerDisk).where(ServerDisk.server_id.in_(found)))
    session.execute(delete(Server).where(Server.host_id == host.id))
    session.delete(host)
    session.commit()


def request_sync(session: Session, ctx: RequestContext, host_id: str) -> dict[str, Any]:
    """Queue a sync of the host's domains (one at a time: a pending one is answered)."""
    authorize_manage_hosts(ctx.principal)
    begin_write(session)
    host = _host_row(session, host_id)
    existing = pending_for(session, SYNC_TASK, host.id)
    if existing is not None:
        session.rollback()
        return {"task_id": existing}
    task = enqueue(session, SYNC_TASK, "host", host.id)
    session.commit()
    return {"task_id": task.id}


def synced_before(session: Session, cutoff: datetime) -> list[str]:
    """Hosts last synced before ``cutoff`` (or never) with no sync pending."""
    rows = session.scalars(
        select(Host.id).where((Host.synced_at.is_(None)) | (Host.synced_at < cutoff))
    )
    return [hid for hid in rows if pending_for(session, SYNC_TASK, hid) is None]
