"""A schema-driven fuzz of the whole API (SPEC §9.1): every operation of the OpenAPI
document, requests generated from it (valid and invalid), sent as a logged-in system
administrator to a served application on each database. No answer may be a 5xx, and every
error is problem+json with a ``code``.

For each operation: the boundary cases of schemathesis' coverage phase (limits, every type
violation, null, missing fields), then random valid and invalid requests
(``HOSTIMAGE_FUZZ_EXAMPLES`` of each, default 40). Path and query parameters that name objects
usually name real ones (made fresh for each operation), so the bodies reach the code behind
the lookups, not only the 404s.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

# The coverage phase's case generator (schemathesis runs it only from its own runners).
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override
from sqlalchemy import Engine

from hostimage.api.app import create_app
from hostimage.db.engine import session_scope
from hostimage.services.bootstrap import bootstrap
from hostimage.settings import load_settings
from tests.api.conftest import ADMIN_PASSWORD, PASSWORD, raw_disk
from tests.api.live_server import client_from, serve
from tests.conftest import wipe

# Examples per operation; with the boundary cases of the coverage phase this keeps a
# backend's run within about two minutes.
MAX_EXAMPLES = int(os.environ.get("HOSTIMAGE_FUZZ_EXAMPLES", "40"))
# Logins the fuzzer itself needs come from another loopback address than its own requests,
# so that the fuzzed logins' failures never throttle them.
HELPER_ADDRESS = "127.0.0.9"


@dataclass
class Target:
    base: str
    token: str
    ids: dict[str, list[str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    helper: httpx.Client | None = None

    def admin(self) -> httpx.Client:
        assert self.helper is not None
        self.helper.headers["Authorization"] = f"Bearer {self.token}"
        return self.helper

    def fresh_token(self) -> str:
        assert self.helper is not None
        r = self.helper.post(
            "/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}, headers={}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


@pytest.fixture(scope="module")
def target(
    database: tuple[str, Engine],
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Target]:
    """The application on a wiped database (SQLite with local files, PostgreSQL with S3),
    served on loopback, with a system administrator's token and a small world."""
    url, engine = database
    wipe(engine)
    storage: dict[str, Any] = {}
    if backend == "postgres":
        s3 = request.getfixturevalue("s3_server")
        storage = {
            "storage_url": f"s3://{s3.bucket}/{s3.run_prefix}/fuzz-{uuid.uuid4().hex[:10]}",
            "s3_endpoint": s3.endpoint,
            "s3_region": s3.region,
            "s3_access_key": s3.access_key,
            "s3_secret_key": s3.secret_key,
        }
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    app_settings = load_settings(
        data_dir=data_dir, database_url=url, admin_password=ADMIN_PASSWORD, **storage
    )
    app = create_app(app_settings, engine=engine)
    with session_scope(app.state.session_factory) as s:
        bootstrap(s, ADMIN_PASSWORD)
    with serve(app) as base, client_from(base, HELPER_ADDRESS) as helper:
        t = Target(base=base, token="", helper=helper)
        t.token = t.fresh_token()
        _identities(t)
        yield t


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def _identities(t: Target) -> None:
    api = t.admin()
    _ok(api.patch("/settings", json={"three_level_permissions": True}))
    domain = _ok(api.post("/domains", json={"name": "D1"}), 201)
    project = _ok(api.post("/projects", json={"name": "p1", "domain_id": domain["id"]}), 201)
    user = _ok(
        api.post("/users", json={"name": "u1", "domain_id": domain["id"], "password": PASSWORD}),
        201,
    )
    role = {"user_id": user["id"], "role": "member", "scope": "project"}
    assignment = _ok(api.post("/role-assignments", json={**role, "project_id": project["id"]}), 201)
    t.ids.update(
        domain_id=[domain["id"]],
        project_id=[project["id"]],
        user_id=[user["id"]],
        assignment_id=[assignment["id"]],
    )


def _upload(api: httpx.Client, name: str, seed: int, project_id: str) -> str:
    image = _ok(
        api.post("/images", json={"name": name, "disk_format": "raw", "project_id": project_id}),
        201,
    )
    _ok(
        api.put(
            f"/images/{image['id']}/data",
            content=raw_disk(seed, size=64 * 1024),
            headers={"Content-Type": "application/octet-stream"},
        )
    )
    return str(image["id"])


def _seed(t: Target) -> None:
    """Fresh objects for one operation: a host image of two disks, a standalone image, a
    server, tasks and log entries."""
    api = t.admin()
    project = t.ids["project_id"][0]
    tag = uuid.uuid4().hex[:8]
    sources = [_upload(api, f"src-{tag}-{i}", i, project) for i in range(2)]
    body = {"name": f"hi-{tag}", "image_ids": sources, "project_id": project}
    hi = _ok(api.post("/host-images", json=body), 201)
    standalone = _upload(api, f"img-{tag}", 7, project)
    body = {"name": f"vm-{tag}", "disks": [{"size_mb": 8}], "project_id": project}
    server = _ok(api.post("/servers", json=body), 202)
    convert = _ok(api.post(f"/host-images/{hi['id']}/formats", json={"format": "qcow2"}), 202)
    entries = _ok(api.get(f"/host-images/{hi['id']}/logs"))["items"]
    t.ids.update(
        host_image_id=[hi["id"]],
        image_id=[standalone, hi["sub_images"][0]["id"]],
        server_id=[server["id"]],
        task_id=[convert["task_id"], server["task_id"]],
        entry_id=[str(entries[0]["id"])],
        obj_id=[hi["id"]],
        target_id=[hi["id"]],
    )


def _real(value: Any, pool: list[str]) -> Any:
    """Usually a real object's id instead of the generated value (decided by the value, so
    a failing example replays and shrinks the same way)."""
    digest = zlib.crc32(repr(value).encode())
    return value if digest % 4 == 0 else pool[digest % len(pool)]


def _aim(case: Any, t: Target) -> None:
    for container in (case.path_parameters, case.query):
        if not container:
            continue
        for name, value in list(container.items()):
            if name in t.ids:
                container[name] = _real(value, t.ids[name])


def _header(response: Any, name: str) -> str:
    values = response.headers.get(name) or [""]
    return str(values[0] if isinstance(values, list) else values)


def _check(case: Any, t: Target, session: requests.Session) -> None:
    _aim(case, t)
    token = t.token
    if case.path.endswith("/auth/logout"):
        token = t.fresh_token()  # the shared token must outlive the run
    response = case.call(
        base_url=t.base, session=session, headers={"Authorization": f"Bearer {token}"}
    )
    t.statuses[response.status_code] += 1
    where = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}"
    assert response.status_code < 500, f"{where}\n-> {response.status_code} {response.text}"
    assert _header(response, "x-request-id"), where
    if response.status_code >= 400:
        kind = _header(response, "content-type")
        assert kind.startswith("application/problem+json"), f"{where}\n-> {kind}"
        body = response.json()
        assert isinstance(body.get("code"), str) and body["code"], f"{where}\n-> {body}"


def _fuzz(operation: Any, mode: GenerationMode, t: Target, session: requests.Session) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        # The first failing example is reported as generated: shrinking would replay
        # hundreds of requests.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    def run(case: Any) -> None:
        _check(case, t, session)

    try:
        run()
    except Unsatisfiable:
        # Nothing can be made invalid here (every parameter is a free string).
        assert mode is GenerationMode.NEGATIVE


def _coverage(operation: Any, schema: Any, t: Target, session: requests.Session) -> Iterator[str]:
    """The boundary cases of schemathesis' coverage phase (limits, each type violation,
    null, missing required fields), each sent once; yields the failures."""
    cases = CoverageGenerator(
        operation=operation,
        generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
        auth_storage=None,
        override=Override(),
        feedback=FeedbackSources(),
    )
    for case in cases:
        try:
            _check(case, t, session)
        except AssertionError as exc:
            yield str(exc)


def test_no_answer_is_a_server_error(target: Target) -> None:
    document = httpx.get(f"{target.base}/api/v1/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.generation.update(allow_x00=True)
    failures: list[str] = []
    answered_ok = 0  # operations that answered 2xx at least once: the fuzz got through
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    with requests.Session() as session:
        for operation in operations:
            started = time.monotonic()
            _seed(target)
            failures += [
                f"{operation.label} [coverage]: {f}"
                for f in _coverage(operation, schema, target, session)
            ]
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(operation, mode, target, session)
                except Exception as exc:  # every failing operation is reported, not the first
                    failures.append(f"{operation.label} [{mode.value}]: {exc}")
            took = time.monotonic() - started
            seen = dict(sorted(target.statuses.items()))
            answered_ok += any(200 <= status < 300 for status in seen)
            print(f"fuzz {operation.label}: {took:.1f} s {seen}", file=sys.stderr)
            target.statuses.clear()
    assert not failures, "\n\n".join(failures)
    assert answered_ok >= len(operations) // 2, answered_ok
