#!/usr/bin/env python3
"""Catalogue benchmark: a large host-image catalogue served over HTTP, 8 concurrent clients.

Seeds (by default) 100,000 host images with 300,000 sub-images, 2,000 projects in 50
domains, every share scope and 1,000,000 operation-log entries into PostgreSQL and/or SQLite,
starts the API on that database, and measures the console's hot paths:

* list first page in each view (project / domain / system) and a filtered + sorted list,
* PATCH name and PATCH description of a host image,
* the first page of one host image's operation log,
* a batch of N set_protection(false) followed by a batch delete of the same N images.

Every HTTP workload is measured twice: one sequential client (latency as the Glance peer
benchmark measures it) and ``--clients`` concurrent keep-alive clients for ``--duration``
seconds (p50 / p99 / req/s). Two floors are measured in the same run, against the same
server, as a baseline: ``GET /healthz`` (no auth, no SQL) and ``GET /auth/whoami`` (token
lookup only). Results are printed as ratios to the targets and to the floor, and, with
``--with-glance`` or ``--glance-results``, to OpenStack Glance measured in the same sitting.

Run ``uv run python bench/catalogue.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _load import Client, Factory, Result, run  # noqa: E402
from _seed import (  # noqa: E402
    ADMIN,
    DOMADMIN,
    MEMBER,
    PASSWORD,
    Sizes,
    World,
    seed_postgres,
    seed_sqlite,
    world_from_db,
)

API = "/api/v1"

# Targets from the issue, on PostgreSQL: (statistic, limit).
LIST_TARGET = ("p99", 25.0)
PATCH_TARGET = ("p50", 8.0)
LOG_TARGET = ("p99", 20.0)
BATCH_TARGET_S = 2.0

# Glance peer rows (glance_peer_bench.py names) each of our workloads is compared with.
GLANCE_LIST = "list first page (limit=20)"
GLANCE_FILTERED = "list private, by created_at"
GLANCE_PATCH = "PATCH replace /name"


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hostimage_bin() -> list[str]:
    sibling = Path(sys.executable).with_name("hostimage")
    if sibling.exists():
        return [str(sibling)]
    found = shutil.which("hostimage")
    return [found] if found else [sys.executable, "-c", "from hostimage.main import run; run()"]


def shipped_api_processes(backend: str) -> int:
    """What ``hostimage serve`` starts by default (``default_api_processes``)."""
    return 1 if backend == "sqlite" else max(1, min(os.cpu_count() or 1, 8))


class Server:
    """The API under test: ``hostimage serve --api-processes N --workers 1`` (N API
    processes sharing the port, one embedded task worker)."""

    def __init__(self, db_url: str, data_dir: Path, procs: int, log_path: Path) -> None:
        self.db_url, self.data_dir, self.procs = db_url, data_dir, procs
        self.log_path = log_path
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.children: list[subprocess.Popen[bytes]] = []

    @property
    def describe(self) -> str:
        return f"hostimage serve --api-processes {self.procs} --workers 1 (task worker)"

    def start(self) -> None:
        env = dict(os.environ)
        env["HOSTIMAGE_DATABASE_URL"] = self.db_url
        env["HOSTIMAGE_DATA_DIR"] = str(self.data_dir)
        env.setdefault("HOSTIMAGE_ADMIN_PASSWORD", PASSWORD)
        hi = _hostimage_bin()
        port = str(self.port)
        cmds = [
            [
                *hi,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--data-dir",
                str(self.data_dir),
                "--workers",
                "1",
                "--api-processes",
                str(self.procs),
            ]
        ]
        out = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the children
        for cmd in cmds:
            self.children.append(
                subprocess.Popen(
                    cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        deadline = time.monotonic() + 180
        client = Client(self.base)
        while time.monotonic() < deadline:
            for child in self.children:
                if child.poll() is not None:
                    raise RuntimeError(
                        f"server exited early; see {self.log_path}:\n"
                        + self.log_path.read_text()[-2000:]
                    )
            try:
                if client.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                client.close()
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after 180 s; see {self.log_path}")

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        self.children.clear()

    def login(self, user: str, domain: str) -> str:
        body = {"username": user, "password": PASSWORD, "domain": domain}
        out = Client(self.base).json("POST", f"{API}/auth/login", body)
        return str(out["token"])


# --------------------------------------------------------------------------- workloads


@dataclass
class Row:
    backend: str
    procs: int
    key: str
    label: str
    seq: Result | None = None
    conc: Result | None = None
    target: tuple[str, float] | None = None
    glance: str | None = None
    # batch rows: seconds per run
    batch_s: list[float] = field(default_factory=list)
    batch_ok: list[int] = field(default_factory=list)
    note: str = ""

    def value(self, which: str) -> float | None:
        """The statistic the target is about, from the 1-client (``seq``) or N-client run."""
        res = self.seq if which == "seq" else self.conc
        if not self.target or res is None:
            return None
        return float(getattr(res, self.target[0]))

    def ratio(self, which: str = "conc", batch_target_s: float = BATCH_TARGET_S) -> float | None:
        """measured / target (≤ 1 meets it)."""
        if self.batch_s:
            return statistics.median(self.batch_s) / batch_target_s
        v = self.value(which)
        return None if v is None or self.target is None else v / self.target[1]

    def as_json(self) -> dict[str, Any]:
        def r(x: Result | None) -> dict[str, Any] | None:
            if x is None:
                return None
            return {
                "p50_ms": x.p50,
                "p99_ms": x.p99,
                "req_s": x.rps,
                "count": x.count,
                "errors": x.errors,
                "first_error": x.first_error,
            }

        return {
            "backend": self.backend,
            "procs": self.procs,
            "key": self.key,
            "label": self.label,
            "one_client": r(self.seq),
            "concurrent": r(self.conc),
            "target": self.target,
            "glance_row": self.glance,
            "batch_s": self.batch_s,
            "batch_ok": self.batch_ok,
            "ratio_to_target_one_client": None if self.batch_s else self.ratio("seq"),
            "ratio_to_target_concurrent": None if self.batch_s else self.ratio("conc"),
            "note": self.note,
        }


@dataclass
class Workload:
    key: str
    label: str
    user: str  # ADMIN, DOMADMIN, MEMBER or "" (no token)
    make: Callable[[int, str], Factory]  # (clients, nonce) -> factory
    target: tuple[str, float] | None = None
    glance: str | None = None


def _const(method: str, path: str, expect: int = 200) -> Callable[[int, str], Factory]:
    return lambda _n, _nonce: lambda _k, _s: (method, path, None, expect)


def _patch(pool: list[tuple[str, str]], attr: str) -> Callable[[int, str], Factory]:
    """Each client walks its own slice of the pool, so no two clients lock the same row."""

    def make(n: int, nonce: str) -> Factory:
        slices = [pool[k::n] for k in range(n)]

        def factory(k: int, s: int) -> tuple[str, str, Any, int]:
            hid, name = slices[k][s % len(slices[k])]
            if attr == "name":
                body = {"name": f"{name.split('-p')[0]}-p{nonce}x{k}x{s}"}
            else:
                body = {"description": f"bench {nonce} client {k} request {s}"}
            return ("PATCH", f"{API}/host-images/{hid}", body, 200)

        return factory

    return make


def _logs(pool: list[str]) -> Callable[[int, str], Factory]:
    def make(_n: int, _nonce: str) -> Factory:
        return lambda k, s: (
            "GET",
            f"{API}/host-images/{pool[(k * 7 + s) % len(pool)]}/logs",
            None,
            200,
        )

    return make


def workloads(world: World, filtered_query: str) -> list[Workload]:
    hi = f"{API}/host-images"
    return [
        Workload(
            "floor_health", "floor: GET /healthz (no auth, no SQL)", "", _const("GET", "/healthz")
        ),
        Workload(
            "floor_whoami",
            "floor: GET /auth/whoami (token only)",
            MEMBER,
            _const("GET", f"{API}/auth/whoami"),
        ),
        Workload(
            "list_project",
            "list page 1, scope=project (member)",
            MEMBER,
            _const("GET", f"{hi}?scope=project&limit=20"),
            LIST_TARGET,
            GLANCE_LIST,
        ),
        Workload(
            "list_domain",
            "list page 1, scope=domain (domainadmin)",
            DOMADMIN,
            _const("GET", f"{hi}?scope=domain&limit=20"),
            LIST_TARGET,
            GLANCE_LIST,
        ),
        Workload(
            "list_system",
            "list page 1, scope=system (sysadmin)",
            ADMIN,
            _const("GET", f"{hi}?scope=system&limit=20"),
            LIST_TARGET,
            GLANCE_LIST,
        ),
        Workload(
            "list_filtered",
            "list filtered+sorted (sysadmin)",
            ADMIN,
            _const("GET", f"{hi}?{filtered_query}"),
            LIST_TARGET,
            GLANCE_FILTERED,
        ),
        Workload(
            "patch_name",
            "PATCH name (domainadmin)",
            DOMADMIN,
            _patch(world.patch_pool, "name"),
            PATCH_TARGET,
            GLANCE_PATCH,
        ),
        Workload(
            "patch_description",
            "PATCH description (domainadmin)",
            DOMADMIN,
            _patch(world.patch_pool, "description"),
            PATCH_TARGET,
            GLANCE_PATCH,
        ),
        Workload(
            "log_page",
            "log page 1, GET /host-images/{id}/logs (member)",
            MEMBER,
            _logs(world.log_pool),
            LOG_TARGET,
        ),
    ]


def pending_tasks(db_url: str) -> int:
    from sqlalchemy import func, select

    from hostimage.db.engine import make_engine
    from hostimage.db.models import Task

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(Task)
                    .where(Task.status.in_(("queued", "running")))
                )
                or 0
            )
    finally:
        engine.dispose()


def measure_server(
    backend: str, server: Server, world: World, args: argparse.Namespace, batch_ids: list[list[str]]
) -> list[Row]:
    tokens = {
        ADMIN: server.login(ADMIN, "Default"),
        DOMADMIN: server.login(DOMADMIN, world.big_domain_name),
        MEMBER: server.login(MEMBER, world.big_domain_name),
        "": None,
    }
    rows: list[Row] = []
    for w in workloads(world, args.filtered_query):
        if args.only and w.key not in args.only:
            continue
        token = tokens[w.user]
        # a warm-up request that must succeed (fails fast on a broken workload)
        method, path, body, expect = w.make(1, "w" + secrets.token_hex(2))(0, 0)
        status, payload = Client(server.base, token).request(method, path, body)
        if status != expect:
            raise RuntimeError(f"{w.key}: {method} {path} -> {status} {payload[:300]!r}")
        seq = run(
            server.base,
            token,
            w.make(1, secrets.token_hex(3)),
            clients=1,
            requests=args.seq_requests,
            warmup=0.5,
        )
        conc = run(
            server.base,
            token,
            w.make(args.clients, secrets.token_hex(3)),
            clients=args.clients,
            duration=args.duration,
            warmup=args.warmup,
        )
        row = Row(backend, server.procs, w.key, w.label, seq, conc, w.target, w.glance)
        row.note = f"load avg {os.getloadavg()[0]:.1f}"
        rows.append(row)
        log(
            f"    {w.label:<50} 1 client p50 {seq.p50:7.2f} p99 {seq.p99:7.2f} | "
            f"{args.clients} clients p50 {conc.p50:7.2f} p99 {conc.p99:7.2f} ms "
            f"{conc.rps:8.1f} req/s  err {seq.errors + conc.errors}"
            + f"  {row.note}"
            + (f"  ({conc.first_error or seq.first_error})" if conc.errors + seq.errors else "")
        )
    if args.only and "batch" not in args.only:
        return rows
    # batch: set_protection(false) then delete, on ids nobody else touches
    admin = Client(server.base, tokens[ADMIN])
    prot = Row(
        backend,
        server.procs,
        "batch_protect",
        f"batch set_protection x{args.batch_size} (sysadmin)",
    )
    dele = Row(backend, server.procs, "batch_delete", f"batch delete x{args.batch_size} (sysadmin)")
    drain: list[float] = []
    for ids in batch_ids:
        for row, body in (
            (prot, {"action": "set_protection", "ids": ids, "params": {"protected": False}}),
            (dele, {"action": "delete", "ids": ids}),
        ):
            t = time.perf_counter()
            out = admin.json("POST", f"{API}/host-images/batch", body)
            row.batch_s.append(time.perf_counter() - t)
            row.batch_ok.append(sum(1 for r in out["results"] if r["ok"]))
        # the embedded task worker purges the deleted images; wait so runs do not overlap
        t = time.perf_counter()
        while pending_tasks(server.db_url) and time.perf_counter() - t < args.drain_timeout:
            time.sleep(0.5)
        drain.append(time.perf_counter() - t)
    for row in (prot, dele):
        row.note = (
            f"runs: {' '.join(f'{s:.2f}' for s in row.batch_s)} s; "
            f"ok {'/'.join(str(n) for n in row.batch_ok)} of {args.batch_size}"
        )
        rows.append(row)
        log(f"    {row.label:<50} {row.note}")
    purge = Row(backend, server.procs, "purge", f"task worker purge of {args.batch_size} deleted")
    purge.note = f"runs: {' '.join(f'{s:.1f}' for s in drain)} s (after the delete batch returned)"
    rows.append(purge)
    log(f"    {purge.label:<50} {purge.note}")
    return rows


# --------------------------------------------------------------------------- backends


def _pg_url(admin_url: str, db: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{db}"


def prepare_backend(
    backend: str, args: argparse.Namespace, work: Path, sizes: Sizes
) -> tuple[str, Path, dict[str, float]]:
    """Create (or reuse with --skip-seed) the database; answer (url, data dir, seed timings)."""
    timings: dict[str, float] = {}
    if backend == "postgres":
        import psycopg

        url = _pg_url(args.pg_url, args.pg_db)
        data_dir = work / "postgres"
        data_dir.mkdir(parents=True, exist_ok=True)
        if not args.skip_seed:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.pg_db}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{args.pg_db}"')
            t = time.perf_counter()
            timings = seed_postgres(url, sizes, lambda m: log(m)).timings
            timings["total"] = time.perf_counter() - t
        return url, data_dir, timings
    data_dir = work / "sqlite"
    path = data_dir / "hostimage.db"
    if not args.skip_seed:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        t = time.perf_counter()
        timings = seed_sqlite(
            str(path), sizes, lambda m: log(m), analyze=args.sqlite_analyze
        ).timings
        timings["total"] = time.perf_counter() - t
    return f"sqlite:///{path}", data_dir, timings


def drop_backend(backend: str, args: argparse.Namespace) -> None:
    if backend == "postgres":
        import psycopg

        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.pg_db}" WITH (FORCE)')


# --------------------------------------------------------------------------- glance


def run_glance(script: str, gdir: Path, records: int) -> Path:
    """Run the Glance peer side by side (sections b and c: list + PATCH); answer results.json."""
    env = dict(os.environ)
    env.setdefault("SECTIONS", "bc")
    env.setdefault("RECORDS", str(records))
    out = gdir / "glance_peer.out"
    gdir.mkdir(parents=True, exist_ok=True)
    log(
        f"== Glance peer ({script}, SECTIONS={env['SECTIONS']} RECORDS={env['RECORDS']}); "
        f"output in {out}"
    )
    t = time.perf_counter()
    with open(out, "wb") as fh:
        subprocess.run(
            ["bash", script, str(gdir)], env=env, stdout=fh, stderr=subprocess.STDOUT, check=True
        )
    log(f"   done in {time.perf_counter() - t:.0f} s")
    return gdir / "results.json"


def load_glance(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    return {r["what"]: float(r["value"]) for r in data["results"]}


# --------------------------------------------------------------------------- report


def _f(x: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if x is None or x != x else fmt.format(x)


def _verdict(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f} " + ("ok" if ratio <= 1 else "MISS")


def report(
    rows: list[Row],
    args: argparse.Namespace,
    glance: dict[str, float] | None,
    headers: dict[tuple[str, int], str],
) -> str:
    lines: list[str] = []
    groups: dict[tuple[str, int], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.backend, r.procs), []).append(r)
    c = args.clients
    batch_target = BATCH_TARGET_S * args.batch_size / 1000
    for (backend, procs), group in groups.items():
        floor = next((r for r in group if r.key == "floor_whoami"), None)
        lines.append("")
        lines.append(headers[(backend, procs)])
        lines.append(
            f"| workload | 1 client p50 ms | 1 client p99 ms | {c} clients p50 ms | "
            f"{c} clients p99 ms | {c} clients req/s | errors | target | "
            f"measured / target, 1 client | measured / target, {c} clients | "
            "req/s ÷ whoami floor | note |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
        for r in group:
            if r.key == "purge":
                lines.append(f"| {r.label} | | | | | | | | | | | {r.note} |")
                continue
            if r.batch_s:
                errors = len(r.batch_s) * args.batch_size - sum(r.batch_ok)
                lines.append(
                    f"| {r.label} | | | | | | {errors} | ≤ {batch_target:.2f} s "
                    f"(2 s per 1,000) | {_verdict(r.ratio(batch_target_s=batch_target))} "
                    f"(median {statistics.median(r.batch_s):.2f} s) | | | {r.note} |"
                )
                continue
            assert r.seq and r.conc
            target = f"{r.target[0]} ≤ {r.target[1]:.0f} ms" if r.target else "baseline"
            vs_floor = r.conc.rps / floor.conc.rps if floor and floor.conc else None
            lines.append(
                f"| {r.label} | {_f(r.seq.p50)} | {_f(r.seq.p99)} | {_f(r.conc.p50)} | "
                f"{_f(r.conc.p99)} | {_f(r.conc.rps)} | {r.seq.errors + r.conc.errors} | "
                f"{target} | {_verdict(r.ratio('seq'))} | {_verdict(r.ratio('conc'))} | "
                f"{_f(vs_floor, '{:.2f}')} | {r.note} |"
            )
    if glance:
        lines.append("")
        lines.append(
            "Against OpenStack Glance measured in the same sitting "
            f"({glance.get('_records', 0):,.0f}"
            " images, SQLite, uWSGI; its latencies are 1 sequential client, its req/s "
            f"{c} clients). Latency ratio > 1 = hostimage slower; req/s ratio > 1 = hostimage "
            "faster."
        )
        lines.append(
            "| backend | API procs | workload | p50 ratio (1 client) | "
            "p99 ratio (1 client) | req/s ratio | Glance p50 / p99 ms, req/s |"
        )
        lines.append("|---|---:|---|---:|---:|---:|---|")
        for r in rows:
            if not r.glance or not r.seq or not r.conc:
                continue
            g50 = glance.get(f"{r.glance} p50")
            g99 = glance.get(f"{r.glance} p99")
            grps = glance.get(f"{r.glance} {c} clients")
            lines.append(
                f"| {r.backend} | {r.procs} | {r.label} | "
                f"{_f(r.seq.p50 / g50 if g50 else None, '{:.2f}')} | "
                f"{_f(r.seq.p99 / g99 if g99 else None, '{:.2f}')} | "
                f"{_f(r.conc.rps / grps if grps else None, '{:.2f}')} | "
                f"{_f(g50)} / {_f(g99)}, {_f(grps)} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- json


def dump_json(
    path: str,
    args: argparse.Namespace,
    sizes: Sizes,
    seeds: dict[str, Any],
    glance: dict[str, float] | None,
    rows: list[Row],
    headers: dict[tuple[str, int], str],
    complete: bool,
) -> None:
    """All figures so far (written after every server configuration, so nothing is lost)."""
    Path(path).write_text(
        json.dumps(
            {
                "complete": complete,
                "args": {
                    k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()
                },
                "sizes": sizes.__dict__,
                "seeds": seeds,
                "glance": glance,
                "headers": [[b, p, h] for (b, p), h in headers.items()],
                "rows": [r.as_json() for r in rows],
            },
            indent=1,
            default=str,
        )
    )


def load_json(path: str) -> tuple[dict[str, Any], list[Row], dict[tuple[str, int], str]]:
    """Rows of an earlier ``--json`` file, for ``--report``."""
    data = json.loads(Path(path).read_text())

    def res(d: dict[str, Any] | None) -> Any:
        if d is None:
            return None
        return SimpleNamespace(
            p50=d["p50_ms"],
            p99=d["p99_ms"],
            rps=d["req_s"],
            count=d["count"],
            errors=d["errors"],
            first_error=d.get("first_error", ""),
        )

    rows = []
    for d in data["rows"]:
        row = Row(
            d["backend"],
            d["procs"],
            d["key"],
            d["label"],
            res(d["one_client"]),
            res(d["concurrent"]),
            tuple(d["target"]) if d["target"] else None,
            None,
            d["batch_s"],
            d["batch_ok"],
            d["note"],
        )
        row.glance = d.get("glance_row")
        rows.append(row)
    headers = {(b, p): h for b, p, h in data.get("headers", [])}
    for r in rows:
        headers.setdefault((r.backend, r.procs), f"### {r.backend}, {r.procs} API process(es)")
    return data, rows, headers


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument(
        "--host-images",
        type=int,
        default=None,
        help="host images to seed (default 100000; 5000 with --quick)",
    )
    ap.add_argument(
        "--log-entries",
        type=int,
        default=None,
        help="operation-log entries (default 10 per host image)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 5,000 images, short measurements, batches of 200",
    )
    ap.add_argument("--backends", default="postgres,sqlite")
    ap.add_argument(
        "--procs",
        default="",
        help="API process counts to measure, comma separated (`hostimage serve"
        " --api-processes N`); default: as shipped, one per CPU on PostgreSQL and one on SQLite",
    )
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per concurrent measurement (default 15; 5 with --quick)",
    )
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument(
        "--seq-requests",
        type=int,
        default=None,
        help="requests in the 1-client latency sample (default 200; 100 quick)",
    )
    ap.add_argument("--batch-size", type=int, default=None, help="default 1000 (200 quick)")
    ap.add_argument("--batch-runs", type=int, default=2)
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    ap.add_argument(
        "--filtered-query",
        default="scope=system&limit=20&name=web&os_type=Linux&order_by=size&order=desc",
        help="query string of the filtered + sorted list",
    )
    ap.add_argument(
        "--only",
        default="",
        help="comma separated workload keys to run (default all), e.g. "
        "list_project,patch_name,batch",
    )
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an administrative PostgreSQL URL (the benchmark creates its own database)",
    )
    ap.add_argument("--pg-db", default="hostimage_bench")
    ap.add_argument(
        "--sqlite-analyze",
        action="store_true",
        help="run ANALYZE on the SQLite file after seeding (the app never does)",
    )
    ap.add_argument("--work-dir", default=None, help="data directories (default: a temp dir)")
    ap.add_argument(
        "--skip-seed",
        action="store_true",
        help="reuse the databases of an earlier --keep run in --work-dir / --pg-db",
    )
    ap.add_argument("--keep", action="store_true", help="keep databases and work dir")
    ap.add_argument(
        "--with-glance",
        metavar="GLANCE_PEER_SH",
        default=None,
        help="run the Glance peer script side by side after our runs (~7 min)",
    )
    ap.add_argument("--glance-dir", default=None, help="install/run dir for the Glance peer")
    ap.add_argument("--glance-records", type=int, default=10000)
    ap.add_argument(
        "--glance-results",
        default=None,
        help="results.json of a Glance peer run from the same sitting",
    )
    ap.add_argument(
        "--json",
        default=None,
        help="also write all results to this file (rewritten after every server configuration)",
    )
    ap.add_argument(
        "--report",
        metavar="JSON",
        default=None,
        help="print the tables of an earlier --json file (with --glance-results "
        "to add Glance ratios) and exit; nothing is measured",
    )
    args = ap.parse_args(argv)
    q = args.quick
    args.host_images = args.host_images or (5_000 if q else 100_000)
    args.duration = args.duration or (5.0 if q else 15.0)
    args.seq_requests = args.seq_requests or (100 if q else 200)
    args.batch_size = args.batch_size or (200 if q else 1000)
    args.only = {s for s in args.only.split(",") if s}
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in args.backends:
        if b not in ("postgres", "sqlite"):
            ap.error(f"unknown backend {b!r}")
    args.procs = [int(p) for p in str(args.procs).split(",") if p]  # empty: as shipped
    return args


def report_only(args: argparse.Namespace) -> int:
    data, rows, headers = load_json(args.report)
    saved = data["args"]
    args.clients, args.batch_size = saved["clients"], saved["batch_size"]
    glance = data.get("glance")
    if args.glance_results:
        glance = load_glance(Path(args.glance_results))
        glance["_records"] = float(
            json.loads(Path(args.glance_results).read_text())["args"].get("records", 0)
        )
    if not data.get("complete", True):
        print("(partial results: the run did not finish)")
    print(report(rows, args, glance, headers))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return report_only(args)
    sizes = Sizes.for_images(args.host_images, args.log_entries)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="hostimage-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log(
        f"hostimage catalogue benchmark: {sizes.host_images:,} host images, "
        f"{sizes.sub_images:,} sub-images, {sizes.projects:,} projects in {sizes.domains} "
        f"domains, {sizes.log_entries:,} log entries; {args.clients} clients; "
        f"{os.cpu_count()} CPUs"
    )
    rows: list[Row] = []
    headers: dict[tuple[str, int], str] = {}
    seeds: dict[str, dict[str, Any]] = {}
    for backend in args.backends:
        log(f"== {backend}: seeding" + (" (skipped, reusing)" if args.skip_seed else ""))
        url, data_dir, timings = prepare_backend(backend, args, work, sizes)
        world = world_from_db(url, sizes)
        seeds[backend] = {"timings": timings, "counts": world.counts}
        if timings:
            log(f"   seeded in {timings['total']:.0f} s: {world.counts}")
        procs_list = args.procs or [shipped_api_processes(backend)]
        need = args.batch_size * args.batch_runs * len(procs_list)
        if len(world.batch_pool) < need:
            raise SystemExit(f"only {len(world.batch_pool)} images for batches, need {need}")
        batch_iter = iter(
            world.batch_pool[i : i + args.batch_size] for i in range(0, need, args.batch_size)
        )
        try:
            for procs in procs_list:
                server = Server(url, data_dir, procs, work / f"server-{backend}-{procs}.log")
                log(f"== {backend}, {server.describe}, {server.base}")
                server.start()
                try:
                    batches = [next(batch_iter) for _ in range(args.batch_runs)]
                    rows += measure_server(backend, server, world, args, batches)
                finally:
                    server.stop()
                seed_s = f", seeded in {timings['total']:.0f} s" if timings else ""
                headers[(backend, procs)] = (
                    f"### {backend}: {server.describe}; {world.counts.get('host_images', 0):,} "
                    f"host images, {world.counts.get('sub_images', 0):,} sub-images, "
                    f"{world.counts.get('log_entries', 0):,} log entries{seed_s}"
                )
                if args.json:
                    dump_json(args.json, args, sizes, seeds, None, rows, headers, False)
        finally:
            if not args.keep:
                drop_backend(backend, args)

    glance: dict[str, float] | None = None
    gpath: Path | None = Path(args.glance_results) if args.glance_results else None
    if args.with_glance:
        gdir = Path(args.glance_dir) if args.glance_dir else work / "glancepeer"
        gpath = run_glance(args.with_glance, gdir, args.glance_records)
    if gpath:
        glance = load_glance(gpath)
        glance["_records"] = float(json.loads(gpath.read_text())["args"].get("records", 0))

    table = report(rows, args, glance, headers)
    print(table, flush=True)
    print(
        f"\nmeasured / target ≤ 1.00 meets the target (the targets are set for PostgreSQL). "
        f"With {args.clients} closed-loop clients latency ≈ {args.clients} / throughput "
        "(Little's law), so the 1-client column is the one comparable with Glance's "
        "figures. 'req/s ÷ whoami floor' = the workload's req/s over the same server's "
        "authenticated no-op (GET /auth/whoami), measured in the same run."
    )
    if args.json:
        dump_json(args.json, args, sizes, seeds, glance, rows, headers, True)
    if not args.keep and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    elif args.keep:
        log(
            f"(kept: work dir {work}"
            + (f", PostgreSQL database {args.pg_db})" if "postgres" in args.backends else ")")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
