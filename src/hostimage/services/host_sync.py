"""The worker side of a host sync: a host's domains become servers (SPEC §9.2).

A domain found for the first time becomes a server of the host's project, named after the
domain. Status follows the domain's state (shut off → ``ready``, running or paused →
``running``); disks follow its XML in target order. A server whose domain is gone becomes
``missing`` — never dropped, and never while a task works on it (``creating``, ``saving``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostimage.compute.libvirt_host import LibvirtHost
from hostimage.compute.model import ComputeError, DomainDisk, DomainInfo, DomainState, HostFacts
from hostimage.db.base import new_id, utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Host, Server, ServerDisk
from hostimage.db.queue import enqueue
from hostimage.domain.status import HostStatus, ServerStatus
from hostimage.services.hosts import SYNC_TASK, synced_before, versions_of
from hostimage.services.runtime import Runtime, TaskRun

# Statuses a task owns: a sync leaves these servers alone.
_BUSY = frozenset({ServerStatus.CREATING, ServerStatus.SAVING, ServerStatus.FAILED})
# libvirt disk buses → the disk drivers the service speaks of.
_BUS_DRIVER = {"virtio": "virtio", "scsi": "scsi", "sata": "sata", "ide": "ide"}


def server_status(state: DomainState) -> ServerStatus:
    """A domain's state as a server status: only a shut-off domain's disks may be read."""
    return ServerStatus.READY if state == DomainState.SHUTOFF else ServerStatus.RUNNING


@dataclass(frozen=True)
class SyncReport:
    added: int = 0
    changed: int = 0
    missing: int = 0


def run_sync(run: TaskRun, host_id: str) -> SyncReport | None:
    """Read the host's domains and bring its servers in line. An unreachable host is marked
    ``unreachable`` with the reason and its servers are left as they were."""
    with run.rt.factory() as session:
        host = session.get(Host, host_id)
        if host is None:
            return None
        uri = host.uri
    try:
        with LibvirtHost(uri) as conn:
            facts = conn.facts()
            domains = conn.domains()
    except ComputeError as exc:
        with run.write() as session:
            row = session.get(Host, host_id)
            if row is not None and row.uri == uri:
                row.status, row.status_reason = HostStatus.UNREACHABLE.value, str(exc)[:1024]
                row.synced_at = row.updated_at = utcnow()
        return None
    with run.write() as session:
        row = session.get(Host, host_id)
        if row is None or row.uri != uri:
            return None  # removed or pointed elsewhere meanwhile: that sync will run
        return apply(session, row, facts, domains)


def _disk_rows(server_id: str, disks: tuple[DomainDisk, ...]) -> list[ServerDisk]:
    return [
        ServerDisk(
            id=new_id(),
            server_id=server_id,
            idx=idx,
            size=d.size or 0,
            format=d.format or "raw",
            path=d.path,
            target=d.target,
            pool=d.pool,
            volume=d.volume,
        )
        for idx, d in enumerate(disks)
    ]


def _same_disks(rows: list[ServerDisk], disks: tuple[DomainDisk, ...]) -> bool:
    def key(
        t: str | None, size: int | None, fmt: str | None, path: str | None
    ) -> tuple[object, ...]:
        return (t, size or 0, fmt or "raw", path)

    have = [key(r.target, r.size, r.format, r.path) for r in sorted(rows, key=lambda r: r.idx)]
    want = [key(d.target, d.size, d.format, d.path) for d in disks]
    return have == want


def apply(session: Session, host: Host, facts: HostFacts, domains: list[DomainInfo]) -> SyncReport:
    """Bring the host's servers in line with ``domains`` (inside the caller's write)."""
    known = list(session.scalars(select(Server).where(Server.host_id == host.id)))
    servers = {s.external_id: s for s in known if s.external_id}
    # A domain the service defines has the server's id as its UUID, and is recorded on the
    # server only when its build commits: one seen earlier is that server's, not a new one.
    building = {s.id for s in known if s.created_here and not s.external_id}
    disks: dict[str, list[ServerDisk]] = {s.id: [] for s in servers.values()}
    if servers:
        for d in session.scalars(
            select(ServerDisk).where(ServerDisk.server_id.in_([s.id for s in servers.values()]))
        ):
            disks[d.server_id].append(d)
    now = utcnow()
    added = changed = missing = 0
    seen: set[str] = set()
    for dom in domains:
        seen.add(dom.uuid)
        want = server_status(dom.state)
        if dom.uuid.replace("-", "") in building:
            continue
        server = servers.get(dom.uuid)
        if server is None:
            server = Server(
                id=new_id(),
                host_id=host.id,
                external_id=dom.uuid,
                created_here=False,
                name=dom.name[:128],
                status=want.value,
                domain_id=host.domain_id,
                project_id=host.project_id,
                disk_driver=_BUS_DRIVER.get(dom.disks[0].bus) if dom.disks else None,
                created_at=now,
                updated_at=now,
            )
            session.add(server)
            session.flush()
            session.add_all(_disk_rows(server.id, dom.disks))
            added += 1
            continue
        if server.status in _BUSY:
            continue
        dirty = False
        if server.status != want:
            server.status, server.status_reason = want.value, None
            dirty = True
        if not server.created_here and server.name != dom.name[:128]:
            server.name = dom.name[:128]
            dirty = True
        rows = disks[server.id]
        if not _same_disks(rows, dom.disks):
            sources = {r.idx: r.source_image_id for r in rows}
            for r in rows:
                session.delete(r)
            session.flush()
            fresh = _disk_rows(server.id, dom.disks)
            for r in fresh:
                r.source_image_id = sources.get(r.idx)
            session.add_all(fresh)
            dirty = True
        if dirty:
            server.updated_at = now
            changed += 1
    for ext_id, server in servers.items():
        if ext_id in seen or server.status in _BUSY or server.status == ServerStatus.MISSING:
            continue
        server.status = ServerStatus.MISSING.value
        server.status_reason = f"The domain is no longer defined on host {host.name}."
        server.updated_at = now
        missing += 1
    host.status, host.status_reason = HostStatus.CONNECTED.value, None
    host.versions = versions_of(facts)
    host.synced_at = host.updated_at = now
    return SyncReport(added, changed, missing)


def schedule_syncs(rt: Runtime, interval: timedelta) -> int:
    """Queue a sync of every host not synced within ``interval``; how many were queued."""
    with rt.factory() as session:
        begin_write(session)
        due = synced_before(session, utcnow() - interval)
        for host_id in due:
            enqueue(session, SYNC_TASK, "host", host_id)
        session.commit()
    return len(due)
