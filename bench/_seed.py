"""Generate a large, consistent catalogue and bulk-load it into PostgreSQL or SQLite.

The schema comes from the project's own migrations (``hostimage.db.migrate.upgrade``); rows
are then written with PostgreSQL ``COPY`` or SQLite ``executemany``, bypassing the ORM.
Secondary indexes are dropped before the load and rebuilt after it (a sorted build is much
faster than maintaining them row by row), and PostgreSQL gets ``VACUUM ANALYZE`` at the end.

Everything is derived from one ``random.Random(seed)``, so both backends get the same data.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

GiB = 1024**3
MiB = 1024**2

PASSWORD = "bench-pass-1"
ADMIN, DOMADMIN, MEMBER = "admin", "domadmin", "member"

HOST_COLS = [
    "id",
    "name",
    "description",
    "status",
    "status_reason",
    "domain_id",
    "project_id",
    "share_scope",
    "protected",
    "is_standard",
    "external_id",
    "os_type",
    "os_distribution",
    "os_version",
    "os_arch",
    "os_language",
    "disk_driver",
    "net_driver",
    "min_ram_mb",
    "hypervisor",
    "boot_mode",
    "disk_format",
    "size",
    "virtual_size",
    "min_disk_mb",
    "sub_image_count",
    "source_server_id",
    "created_at",
    "updated_at",
]
IMAGE_COLS = [
    "id",
    "name",
    "description",
    "status",
    "status_reason",
    "domain_id",
    "project_id",
    "share_scope",
    "disk_format",
    "size",
    "virtual_size",
    "checksum",
    "object_key",
    "host_image_id",
    "idx",
    "role",
    "os_type",
    "created_at",
    "updated_at",
]
LOG_COLS = [
    "time",
    "obj_type",
    "obj_id",
    "obj_name",
    "root_id",
    "action",
    "success",
    "notes",
    "actor_user_id",
    "actor_user_name",
    "actor_project_id",
    "actor_project_name",
    "owner_domain_id",
    "owner_domain_name",
    "owner_project_id",
    "owner_project_name",
    "request_id",
    "client_ip",
]
SHARE_COLS = ["resource_id", "target_kind", "target_id"]
DOMAIN_COLS = ["id", "name", "description", "created_at"]
PROJECT_COLS = ["id", "name", "domain_id", "description", "created_at"]
USER_COLS = ["id", "name", "domain_id", "display_name", "email", "password_hash", "created_at"]
RA_COLS = ["id", "user_id", "role", "scope", "domain_id", "project_id", "created_at"]
SETTING_COLS = ["key", "value"]

BULK_TABLES = ("host_images", "images", "shares", "op_logs")

OS_CHOICES = (
    ("Linux", "Ubuntu", ("20.04", "22.04", "24.04")),
    ("Linux", "CentOS", ("7.9", "8.5")),
    ("Linux", "Debian", ("11", "12")),
    ("Linux", "Rocky", ("8.9", "9.3")),
    ("Windows", "Windows Server", ("2016", "2019", "2022")),
    ("Other", "FreeBSD", ("13.2", "14.0")),
)
ROLES = ("web", "db", "cache", "build", "gateway", "worker", "batch", "analytics", "mq", "lb")
ACTIONS = ("update", "update", "update", "set_protection", "share", "unshare", "save", "convert")


@dataclass(frozen=True)
class Sizes:
    host_images: int = 100_000
    sub_images: int = 300_000
    projects: int = 2_000
    domains: int = 50
    log_entries: int = 1_000_000
    seed: int = 20261127

    @staticmethod
    def for_images(n: int, log_entries: int | None = None) -> Sizes:
        """Defaults scaled to ``n`` host images (the issue's shape at n=100,000)."""
        domains = 50 if n >= 50_000 else 20
        projects = max(domains * 4, min(2_000, round(n / 50)))
        return Sizes(
            host_images=n,
            sub_images=3 * n,
            projects=projects,
            domains=domains,
            log_entries=log_entries if log_entries is not None else 10 * n,
        )


@dataclass
class World:
    """What the load generator needs to know about the seeded catalogue."""

    sizes: Sizes
    big_domain: str = ""
    big_domain_name: str = ""
    member_project: str = ""
    # host images by purpose (disjoint, so one measurement never disturbs another)
    patch_pool: list[tuple[str, str]] = field(default_factory=list)  # (id, name), big domain
    log_pool: list[str] = field(default_factory=list)  # member-visible, long logs
    batch_pool: list[str] = field(default_factory=list)  # protected, active, other domains
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


# --------------------------------------------------------------------------- generation


class Catalogue:
    """All rows of the catalogue, generated deterministically from ``sizes.seed``."""

    def __init__(self, sizes: Sizes, password_hash: str) -> None:
        self.sizes = sizes
        self.rng = rng = random.Random(sizes.seed)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.start = self.now - timedelta(days=730)
        t0 = self.start - timedelta(days=30)

        # domains: Default first; the "big" domain (index 1) gets a fifth of the projects
        self.domains = [
            (_hex(rng), "Default" if i == 0 else f"dom-{i:02d}") for i in range(sizes.domains)
        ]
        self.domain_name = dict(self.domains)
        self.big_domain = self.domains[1][0]
        n_big = max(2, sizes.projects // 5)
        proj_domain: list[str] = [self.big_domain] * n_big
        others = [d for d, _ in self.domains if d != self.big_domain]
        proj_domain += [others[i % len(others)] for i in range(sizes.projects - n_big)]
        self.projects: list[tuple[str, str, str]] = []  # id, name, domain
        seen_default = False
        for i, dom in enumerate(proj_domain):
            name = f"proj-{i:04d}"
            if dom == self.domains[0][0] and not seen_default:
                name, seen_default = "system", True
            self.projects.append((_hex(rng), name, dom))
        self.project_name = {p: n for p, n, _ in self.projects}
        self.projects_of: dict[str, list[str]] = {}
        for pid, _, dom in self.projects:
            self.projects_of.setdefault(dom, []).append(pid)
        self.project_domain = {p: d for p, _, d in self.projects}
        self.member_project = self.projects_of[self.big_domain][7]

        # users: the three actors, plus one member per project (realistic role table size)
        self.users: list[tuple[Any, ...]] = []
        self.assignments: list[tuple[Any, ...]] = []

        def user(
            name: str, domain: str, role: str, scope: str, d: str | None, p: str | None
        ) -> None:
            uid = _hex(rng)
            self.users.append((uid, name, domain, name, f"{name}@example.test", password_hash, t0))
            self.assignments.append((_hex(rng), uid, role, scope, d, p, t0))

        user(ADMIN, self.domains[0][0], "sysadmin", "system", None, None)
        user(DOMADMIN, self.big_domain, "domainadmin", "domain", self.big_domain, None)
        user(MEMBER, self.big_domain, "member", "project", None, self.member_project)
        for pid, pname, dom in self.projects:
            user(f"user-{pname}", dom, "member", "project", None, pid)
        self.admin_id = self.users[0][0]

        # host images: owner, share scope, status, sub-image count (mean exactly sub/host)
        n = sizes.host_images
        counts = self._disk_counts(n, sizes.sub_images)
        span = (self.now - self.start).total_seconds()
        self.hosts: list[tuple[Any, ...]] = []
        self.subs: list[tuple[Any, ...]] = []
        self.shares: list[tuple[str, str, str]] = []
        self.sub_ids: dict[str, list[str]] = {}
        self.host_owner: dict[str, tuple[str, str, str]] = {}  # id -> (domain, project, name)
        project_ids = [p for p, _, _ in self.projects]
        domain_ids = [d for d, _ in self.domains]
        for i in range(n):
            hid = _hex(rng)
            pid = rng.choice(project_ids)
            did = self.project_domain[pid]
            os_type, distro, versions = rng.choice(OS_CHOICES)
            version = rng.choice(versions)
            role = ROLES[i % len(ROLES)]
            name = f"{distro.split()[0].lower()}-{version}-{role}-{i:06d}"
            created = self.start + timedelta(seconds=span * i / n + rng.random())
            updated = created + timedelta(seconds=rng.randrange(0, 86400 * 30))
            r = rng.random()
            scope = (
                "none"
                if r < 0.75
                else "project"
                if r < 0.87
                else "domain"
                if r < 0.97
                else "system"
            )
            targets: list[tuple[str, str]] = []
            if scope == "project":
                peers = [p for p in self.projects_of[did] if p != pid]
                if peers:
                    targets = [
                        ("project", t)
                        for t in rng.sample(peers, min(len(peers), rng.randint(1, 3)))
                    ]
                else:
                    scope = "none"
            elif scope == "domain" and rng.random() < 0.5:
                peers = [d for d in domain_ids if d != did]
                targets = [("domain", t) for t in rng.sample(peers, rng.randint(1, 3))]
            s = rng.random()
            status = (
                "active"
                if s < 0.97
                else "killed"
                if s < 0.99
                else "saving"
                if s < 0.995
                else "queued"
            )
            k = counts[i]
            sub_rows, size, sys_virtual, sys_format = [], 0, 0, None
            ids = []
            for idx in range(k):
                sid = _hex(rng)
                ids.append(sid)
                if idx == 0:
                    virtual = rng.choice((20, 40, 50, 80, 100)) * GiB
                    fmt = "qcow2" if rng.random() < 0.9 else rng.choice(("raw", "vmdk"))
                    sys_virtual, sys_format = virtual, fmt
                else:
                    virtual = rng.choice((50, 100, 200, 500)) * GiB
                    fmt = "qcow2" if rng.random() < 0.95 else "raw"
                stored = virtual if fmt == "raw" else int(virtual * rng.uniform(0.05, 0.4))
                if status == "queued":
                    sub_status, stored = "queued", 0
                elif status == "saving":
                    sub_status = "active" if idx == 0 and k > 1 else "saving"
                elif status == "killed":
                    sub_status = "killed" if idx == k - 1 else "active"
                else:
                    sub_status = "active"
                reason = (
                    "save failed: qemu-img exited with status 1" if sub_status == "killed" else None
                )
                size += stored
                sub_name = f"{name}-root" if idx == 0 else f"{name}-data-{idx}"
                sub_rows.append(
                    (
                        sid,
                        sub_name,
                        "",
                        sub_status,
                        reason,
                        did,
                        pid,
                        scope,
                        fmt,
                        stored,
                        virtual,
                        f"sha256:{rng.getrandbits(256):064x}" if sub_status == "active" else None,
                        None,
                        hid,
                        idx,
                        "root" if idx == 0 else "data",
                        os_type,
                        created,
                        created,
                    )
                )
            self.subs.extend(sub_rows)
            self.sub_ids[hid] = ids
            for kind, tid in targets:
                for rid in (hid, *ids):
                    self.shares.append((rid, kind, tid))
            self.hosts.append(
                (
                    hid,
                    name,
                    f"{role} image {i}" if rng.random() < 0.5 else "",
                    status,
                    "save failed: qemu-img exited with status 1" if status == "killed" else None,
                    did,
                    pid,
                    scope,
                    rng.random() < 0.6,
                    scope == "system" and rng.random() < 0.7,
                    f"ext-{i:06d}" if rng.random() < 0.05 else None,
                    os_type,
                    distro,
                    version,
                    "x86_64" if rng.random() < 0.85 else "aarch64",
                    "en_US" if rng.random() < 0.7 else "zh_CN",
                    "auto",
                    "auto",
                    rng.choice((0, 512, 1024, 2048, 4096)),
                    "kvm",
                    "uefi" if rng.random() < 0.3 else "bios",
                    sys_format,
                    size,
                    sys_virtual,
                    math.ceil(sys_virtual / MiB),
                    k,
                    _hex(rng) if rng.random() < 0.8 else None,
                    created,
                    updated,
                )
            )
            self.host_owner[hid] = (did, pid, name)

    @staticmethod
    def _disk_counts(n: int, total: int) -> list[int]:
        """``n`` disk counts in 1..5 summing to ``total`` (mean total/n, capped to 1..5)."""
        total = max(n, min(5 * n, total))
        counts = [1] * n
        extra = total - n
        rng = random.Random(n)
        order = list(range(n))
        while extra > 0:
            rng.shuffle(order)
            for i in order:
                if extra == 0:
                    break
                if counts[i] < 5 and rng.random() < 0.6:
                    counts[i] += 1
                    extra -= 1
        return counts

    def settings(self) -> list[tuple[str, str]]:
        return [("three_level_permissions", "true"), ("target_formats", '["qcow2"]')]

    def hot_hosts(self) -> list[str]:
        """The member project's own host images: they get long logs (the log-tab workload)."""
        return [h[0] for h in self.hosts if h[6] == self.member_project]

    def log_rows(self) -> Iterator[tuple[Any, ...]]:
        """``log_entries`` entries, oldest first (ids follow time), 10 % on the hot images."""
        rng = random.Random(self.sizes.seed + 1)
        n = self.sizes.log_entries
        hot = self.hot_hosts() or [self.hosts[0][0]]
        host_ids = [h[0] for h in self.hosts]
        span = (self.now - self.start).total_seconds()
        actor = (self.admin_id, ADMIN, self.projects[0][0], "system")
        notes = [
            json.dumps({"changes": {"description": ["", "patched"]}}),
            json.dumps({"changes": {"protected": [True, False]}}),
            json.dumps(
                {
                    "old": {"scope": "none", "project_ids": [], "domain_ids": []},
                    "new": {"scope": "system", "project_ids": [], "domain_ids": []},
                }
            ),
            json.dumps({}),
            json.dumps({"cleaned": ["ssh_host_keys", "machine_id", "cloud_init", "var_log"]}),
        ]
        step = span / n
        for i in range(n):
            hid = rng.choice(hot) if rng.random() < 0.10 else rng.choice(host_ids)
            did, pid, name = self.host_owner[hid]
            if rng.random() < 0.2:
                subs = self.sub_ids[hid]
                j = rng.randrange(len(subs))
                obj_type, obj_id = "image", subs[j]
                obj_name = f"{name}-root" if j == 0 else f"{name}-data-{j}"
            else:
                obj_type, obj_id, obj_name = "host_image", hid, name
            yield (
                self.start + timedelta(seconds=step * i),
                obj_type,
                obj_id,
                obj_name,
                hid,
                rng.choice(ACTIONS),
                rng.random() < 0.97,
                notes[i % len(notes)],
                *actor,
                did,
                self.domain_name[did],
                pid,
                self.project_name[pid],
                f"{rng.getrandbits(64):016x}",
                "10.0.0.1",
            )

    def world(self) -> World:
        w = World(
            self.sizes,
            big_domain=self.big_domain,
            big_domain_name=self.domain_name[self.big_domain],
            member_project=self.member_project,
        )
        hot = set(self.hot_hosts())
        w.log_pool = sorted(hot)
        for h in self.hosts:
            hid, name, status, did, protected = h[0], h[1], h[3], h[5], h[8]
            if hid in hot:
                continue
            if did == self.big_domain:
                if status != "saving" and status != "queued":
                    w.patch_pool.append((hid, name))
            elif protected and status == "active":
                w.batch_pool.append(hid)
        random.Random(self.sizes.seed + 2).shuffle(w.batch_pool)
        w.counts = {
            "domains": len(self.domains),
            "projects": len(self.projects),
            "users": len(self.users),
            "host_images": len(self.hosts),
            "sub_images": len(self.subs),
            "shares": len(self.shares),
            "log_entries": self.sizes.log_entries,
        }
        return w


# --------------------------------------------------------------------------- loading


def _timed(
    label: str, timings: dict[str, float], fn: Callable[[], None], log: Callable[[str], None]
) -> None:
    t = time.perf_counter()
    fn()
    timings[label] = time.perf_counter() - t
    log(f"    {label}: {timings[label]:.1f} s")


def seed_postgres(url: str, sizes: Sizes, log: Callable[[str], None] = print) -> World:
    """Migrate ``url`` (an empty database), then COPY the catalogue into it."""
    import psycopg

    from hostimage.db.migrate import upgrade

    timings: dict[str, float] = {}
    _timed("migrate", timings, lambda: upgrade(url), log)
    cat = _generate(sizes, timings, log)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        # Rows are generated consistent; skip per-row FK triggers during the bulk load.
        conn.execute("SET session_replication_role = replica")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            (list(BULK_TABLES),),
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')

        def copy(table: str, cols: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp,
            ):
                for row in rows:
                    cp.write_row(row)

        def identity() -> None:
            copy("domains", DOMAIN_COLS, [(d, n, "", cat.start) for d, n in cat.domains])
            copy("projects", PROJECT_COLS, [(p, n, d, "", cat.start) for p, n, d in cat.projects])
            copy("users", USER_COLS, cat.users)
            copy("role_assignments", RA_COLS, cat.assignments)
            copy("settings", SETTING_COLS, cat.settings())

        _timed("copy identity", timings, identity, log)
        _timed("copy host_images", timings, lambda: copy("host_images", HOST_COLS, cat.hosts), log)
        _timed("copy images", timings, lambda: copy("images", IMAGE_COLS, cat.subs), log)
        _timed("copy shares", timings, lambda: copy("shares", SHARE_COLS, cat.shares), log)
        _timed("copy op_logs", timings, lambda: copy("op_logs", LOG_COLS, cat.log_rows()), log)

        def rebuild() -> None:
            for _, ddl in indexes:
                conn.execute(ddl)

        _timed("rebuild indexes", timings, rebuild, log)
        conn.execute("SET session_replication_role = origin")
        conn.commit()
        conn.autocommit = True
        _timed("vacuum analyze", timings, lambda: conn.execute("VACUUM ANALYZE"), log)
    w = cat.world()
    w.timings = timings
    return w


def seed_sqlite(
    path: str, sizes: Sizes, log: Callable[[str], None] = print, analyze: bool = False
) -> World:
    """Migrate the SQLite file at ``path``, then executemany the catalogue into it."""
    from hostimage.db.migrate import upgrade

    timings: dict[str, float] = {}
    _timed("migrate", timings, lambda: upgrade(f"sqlite:///{path}"), log)
    cat = _generate(sizes, timings, log)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    conn.execute("PRAGMA temp_store=MEMORY")
    marks = ",".join
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({marks('?' * len(BULK_TABLES))})",
        BULK_TABLES,
    ).fetchall()
    conn.execute("BEGIN")
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')

    def ts(v: datetime) -> str:  # the storage format of SQLAlchemy's SQLite DateTime (UTC)
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def conv(row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            ts(v) if isinstance(v, datetime) else int(v) if isinstance(v, bool) else v for v in row
        )

    def insert(table: str, cols: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks('?' * len(cols))})"
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(conv(row))
            if len(batch) >= 20_000:
                conn.executemany(sql, batch)
                batch.clear()
        if batch:
            conn.executemany(sql, batch)

    def identity() -> None:
        insert("domains", DOMAIN_COLS, [(d, n, "", cat.start) for d, n in cat.domains])
        insert("projects", PROJECT_COLS, [(p, n, d, "", cat.start) for p, n, d in cat.projects])
        insert("users", USER_COLS, cat.users)
        insert("role_assignments", RA_COLS, cat.assignments)
        insert("settings", SETTING_COLS, cat.settings())

    _timed("insert identity", timings, identity, log)
    _timed("insert host_images", timings, lambda: insert("host_images", HOST_COLS, cat.hosts), log)
    _timed("insert images", timings, lambda: insert("images", IMAGE_COLS, cat.subs), log)
    _timed("insert shares", timings, lambda: insert("shares", SHARE_COLS, cat.shares), log)
    _timed("insert op_logs", timings, lambda: insert("op_logs", LOG_COLS, cat.log_rows()), log)

    def rebuild() -> None:
        for _, ddl in indexes:
            conn.execute(ddl)

    _timed("rebuild indexes", timings, rebuild, log)
    conn.execute("COMMIT")
    if analyze:
        _timed("analyze", timings, lambda: conn.execute("ANALYZE"), log)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    w = cat.world()
    w.timings = timings
    return w


def world_from_db(url: str, sizes: Sizes) -> World:
    """The workload pools, read back from the database (also after earlier runs changed it)."""
    from sqlalchemy import func, select

    from hostimage.db.engine import make_engine
    from hostimage.db.models import (
        Domain,
        HostImage,
        Image,
        LogEntry,
        Project,
        RoleAssignment,
        Share,
        User,
    )

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            big = conn.execute(select(Domain.id, Domain.name).where(Domain.name == "dom-01")).one()
            member_project = conn.scalar(
                select(RoleAssignment.project_id)
                .join(User, User.id == RoleAssignment.user_id)
                .where(User.name == MEMBER, User.domain_id == big[0])
            )
            w = World(
                sizes,
                big_domain=big[0],
                big_domain_name=big[1],
                member_project=member_project or "",
            )
            alive = HostImage.status.in_(("active", "killed"))
            w.log_pool = list(
                conn.scalars(
                    select(HostImage.id)
                    .where(HostImage.project_id == member_project, alive)
                    .order_by(HostImage.id)
                )
            )
            w.patch_pool = [
                tuple(r)
                for r in conn.execute(  # type: ignore[misc]
                    select(HostImage.id, HostImage.name)
                    .where(
                        HostImage.domain_id == big[0], HostImage.project_id != member_project, alive
                    )
                    .order_by(HostImage.id)
                )
            ]
            w.batch_pool = list(
                conn.scalars(
                    select(HostImage.id)
                    .where(
                        HostImage.domain_id != big[0],
                        HostImage.protected.is_(True),
                        HostImage.status == "active",
                    )
                    .order_by(HostImage.id)
                )
            )
            for name, model in (
                ("domains", Domain),
                ("projects", Project),
                ("users", User),
                ("host_images", HostImage),
                ("sub_images", Image),
                ("shares", Share),
                ("log_entries", LogEntry),
            ):
                w.counts[name] = conn.scalar(select(func.count()).select_from(model)) or 0
    finally:
        engine.dispose()
    return w


def _generate(sizes: Sizes, timings: dict[str, float], log: Callable[[str], None]) -> Catalogue:
    from hostimage.services.auth import configure_password_hashing, hash_password

    configure_password_hashing(1, 1024)
    holder: list[Catalogue] = []
    _timed(
        "generate rows",
        timings,
        lambda: holder.append(Catalogue(sizes, hash_password(PASSWORD))),
        log,
    )
    return holder[0]
