"""A bounded load test on loopback, on both databases: 50 clients for 60 s (set
``HOSTIMAGE_LOAD_SECONDS`` to change it) against a real ``hostimage serve`` with its workers,
mixing list, details, edit, share, protect, batch, logs, and image create/upload/delete.

It asserts that nothing answers 5xx and that every mutation that succeeded is in the
operation log exactly once (found by the request id each request sends), with nothing logged
as a success for a request that failed.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from hostimage.db.models import LogEntry, Task
from tests.api.conftest import ADMIN_PASSWORD, PASSWORD, World, raw_disk
from tests.processes import service_env, start_server, stop

CLIENTS = 50
SECONDS = float(os.environ.get("HOSTIMAGE_LOAD_SECONDS", "60"))
IMAGES_PER_CLIENT = 3


@dataclass
class Tally:
    """What one client did: requests by status, and what each successful mutation should
    have logged (request id → number of successful entries)."""

    statuses: Counter[int] = field(default_factory=Counter)
    expected: dict[str, int] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


@dataclass
class Client:
    number: int
    http: httpx.Client
    projects: list[str]
    own: list[str]  # host images only this client changes (their state stays known)
    all_ids: list[str]
    tally: Tally = field(default_factory=Tally)
    sent: int = 0
    protected: dict[str, bool] = field(default_factory=dict)
    shared: dict[str, bool] = field(default_factory=dict)

    def call(self, method: str, path: str, *, logs: int = 0, **kw: Any) -> httpx.Response | None:
        self.sent += 1
        rid = f"load-{self.number}-{self.sent}"
        headers = {**kw.pop("headers", {}), "X-Request-ID": rid}
        try:
            r = self.http.request(method, f"/api/v1{path}", headers=headers, **kw)
        except httpx.HTTPError as exc:
            self.tally.errors.append(f"{method} {path}: {exc!r}")
            return None
        self.tally.statuses[r.status_code] += 1
        if r.status_code >= 500:
            self.tally.errors.append(f"{method} {path}: {r.status_code} {r.text[:300]}")
        if r.headers.get("x-request-id") != rid:
            self.tally.errors.append(f"{method} {path}: request id not echoed")
        if r.status_code < 300:
            if logs:
                self.tally.expected[rid] = logs
        else:
            self.tally.failed.add(rid)
        return r

    # ------------------------------------------------------------------- the operations

    def read(self, rng: random.Random) -> None:
        choice = rng.randrange(4)
        if choice == 0:
            params = {"scope": "system", "limit": 20, "offset": rng.randrange(0, 40)}
            if rng.random() < 0.5:
                params["order_by"] = rng.choice(["name", "size", "created_at", "updated_at"])
            self.call("GET", "/host-images", params=params)
        elif choice == 1:
            self.call("GET", f"/host-images/{rng.choice(self.all_ids)}")
        elif choice == 2:
            self.call("GET", f"/host-images/{rng.choice(self.all_ids)}/logs", params={"limit": 20})
        else:
            self.call("GET", "/images", params={"scope": "system", "limit": 20})

    def edit(self, rng: random.Random) -> None:
        hid = rng.choice(self.own)
        # Always a change, so that exactly one entry is due.
        body = {"description": f"edit {self.number}-{self.sent}"}
        if rng.random() < 0.3:
            body["name"] = f"load-{self.number}-{hid[:6]}-{self.sent}"
        self.call("PATCH", f"/host-images/{hid}", json=body, logs=1)

    def share(self, rng: random.Random) -> None:
        hid = rng.choice(self.own)
        if self.shared.get(hid):
            body: dict[str, Any] = {"scope": "none"}
        else:
            body = {"scope": "project", "project_ids": [rng.choice(self.projects[1:])]}
        r = self.call("POST", f"/host-images/{hid}/share", json=body, logs=1)
        if r is not None and r.status_code == 200:
            self.shared[hid] = not self.shared.get(hid)

    def protect(self, rng: random.Random) -> None:
        hid = rng.choice(self.own)
        want = not self.protected.get(hid, True)
        r = self.call("POST", f"/host-images/{hid}/protection", json={"protected": want}, logs=1)
        if r is not None and r.status_code == 200:
            self.protected[hid] = want

    def batch(self, rng: random.Random) -> None:
        want = rng.random() < 0.5
        changing = [h for h in self.own if self.protected.get(h, True) != want]
        body = {"action": "set_protection", "ids": self.own, "params": {"protected": want}}
        r = self.call("POST", "/host-images/batch", json=body, logs=len(changing))
        if r is not None and r.status_code == 200:
            results = r.json()["results"]
            if not all(item["ok"] for item in results):
                self.tally.errors.append(f"batch item refused: {results}")
            for hid in self.own:
                self.protected[hid] = want
            if not changing:
                self.tally.expected.pop(f"load-{self.number}-{self.sent}", None)

    def image_life(self, rng: random.Random) -> None:
        r = self.call(
            "POST",
            "/images",
            json={"name": f"load-img-{self.number}-{self.sent}", "disk_format": "raw"},
            logs=1,
        )
        if r is None or r.status_code != 201:
            return
        iid = r.json()["id"]
        data = raw_disk(self.sent, 256 * 1024)
        r = self.call(
            "PUT",
            f"/images/{iid}/data",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            logs=1,
        )
        if rng.random() < 0.7:
            self.call("DELETE", f"/images/{iid}", logs=1)

    def run(self, until: float, seed: int) -> None:
        rng = random.Random(seed)
        ops = [self.read] * 5 + [self.edit, self.share, self.protect, self.batch, self.image_life]
        while time.monotonic() < until:
            rng.choice(ops)(rng)


def _login(url: str, user: str, password: str, project: str | None = None) -> str:
    body: dict[str, Any] = {"username": user, "password": password}
    if project:
        body["project_id"] = project
    r = httpx.post(f"{url}/api/v1/auth/login", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_fifty_clients_for_a_minute(world: World) -> None:
    projects = [world.projects[p] for p in ("p0a", "p0b")]
    member = world.add_user("loadmember", "member", "p0a")
    assert member.token
    own: list[list[str]] = []
    for n in range(CLIENTS):
        ids = [
            world.host_image("p0a", f"load-{n}-{i}", disks=1, protected=True)["id"]
            for i in range(IMAGES_PER_CLIENT)
        ]
        own.append(ids)
    all_ids = [hid for ids in own for hid in ids]
    proc, url = start_server(service_env(world), "--workers", "1")
    try:
        admin_token = _login(url, "admin", ADMIN_PASSWORD)
        member_token = _login(url, "loadmember", PASSWORD, projects[0])
        clients = []
        for n in range(CLIENTS):
            # A tenth of the clients are project members (they may edit, protect and delete
            # their project's images, not share them); the rest are the system admin.
            token = member_token if n % 10 == 9 else admin_token
            http = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            clients.append(Client(n, http, projects, own[n], all_ids))
        until = time.monotonic() + SECONDS
        threads = [threading.Thread(target=c.run, args=(until, 1000 + c.number)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 300)
        assert not any(t.is_alive() for t in threads), "a client hung"
        # let the workers finish the deletions the clients asked for
        deadline = time.monotonic() + 300
        while True:
            with world.worker.rt.factory() as s:
                left = s.execute(
                    select(Task.kind, Task.status, Task.error, Task.run_after).where(
                        Task.status.in_(["queued", "running"])
                    )
                ).all()
            if not left:
                break
            assert time.monotonic() < deadline, f"tasks were left behind: {left[:10]}"
            time.sleep(0.5)
    finally:
        stop(proc)

    statuses: Counter[int] = Counter()
    expected: dict[str, int] = {}
    failed: set[str] = set()
    errors: list[str] = []
    for c in clients:
        statuses.update(c.tally.statuses)
        expected.update(c.tally.expected)
        failed |= c.tally.failed
        errors += c.tally.errors
        c.http.close()
    total = sum(statuses.values())
    print(f"\n{total} requests in {SECONDS:.0f} s: {dict(sorted(statuses.items()))}")
    assert not errors, errors[:20]
    assert not [code for code in statuses if code >= 500]
    # member clients' share requests are refused (403), so some refusals are expected
    assert statuses[403] > 0 and len(expected) > 100

    with world.worker.rt.factory() as s:
        logged = dict(
            s.execute(
                select(LogEntry.request_id, func.count())
                .where(LogEntry.request_id.like("load-%"), LogEntry.success.is_(True))
                .group_by(LogEntry.request_id)
            )
            .tuples()
            .all()
        )
    missing = {rid: n for rid, n in expected.items() if logged.get(rid, 0) != n}
    assert not missing, {rid: (n, logged.get(rid, 0)) for rid, n in list(missing.items())[:20]}
    extra = {rid: n for rid, n in logged.items() if rid not in expected}
    assert not extra, list(extra.items())[:20]
    assert not (failed & set(logged))
