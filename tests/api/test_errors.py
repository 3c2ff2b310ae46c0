"""Every error is problem+json (SPEC §9.1): a bug is a 500 ``internal`` with the request id
(its traceback in the server log only), a busy database a 503 ``busy`` with Retry-After, a
full disk a 507 ``insufficient_storage``, a unique-key race a 409 ``conflict``."""

from __future__ import annotations

import errno
import logging
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from hostimage.api.app import create_app
from hostimage.api.deps import Run
from hostimage.api.downloads import primed
from hostimage.api.errors import translate
from hostimage.db import engine as db_engine
from hostimage.db.engine import WRITE_BEGIN, begin_write
from hostimage.errors import Busy, InsufficientStorage
from hostimage.settings import load_settings
from tests.api.conftest import ADMIN_PASSWORD, MiB, World, raw_disk
from tests.api.live_server import second_process


def _problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail", "code", "request_id"}
    assert body["request_id"] == r.headers["x-request-id"]
    return body


class Secret(Exception):
    """A bug whose message must not reach the client."""


def _broken_app(world: World) -> FastAPI:
    """The application with a few routes that fail the ways real code can."""
    app = second_process(world.client.app)  # type: ignore[attr-defined]

    async def in_route() -> None:
        raise Secret("password=hunter2 in the route")

    async def in_use_case(run: Run) -> Any:
        def use_case(_session: Any, _ctx: Any) -> None:
            raise Secret("password=hunter2 in the use case thread")

        return await run(use_case)

    async def stream_before_start() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            raise OSError(errno.ENOSPC, "No space left on device")
            yield b""  # pragma: no cover

        return StreamingResponse(await primed(chunks()))

    async def stream_bug_before_start() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            raise Secret("password=hunter2 in the stream")
            yield b""  # pragma: no cover

        return StreamingResponse(await primed(chunks()))

    for path, endpoint in (
        ("/boom/route", in_route),
        ("/boom/use-case", in_use_case),
        ("/boom/stream-nospace", stream_before_start),
        ("/boom/stream", stream_bug_before_start),
    ):
        app.add_api_route(f"/api/v1{path}", endpoint, methods=["GET"])
        # Ahead of the console's static files, which are mounted at / when it is built.
        app.router.routes.insert(0, app.router.routes.pop())
    return app


def test_a_bug_is_a_500_problem_with_the_traceback_only_in_the_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    app = _broken_app(world)
    auth = {"Authorization": f"Bearer {world.admin.token}"}
    # The test client raises whatever reaches the server: nothing may.
    with TestClient(app) as c, caplog.at_level(logging.ERROR, logger="hostimage.api"):
        for path in ("/boom/route", "/boom/use-case", "/boom/stream"):
            caplog.clear()
            r = c.get(f"/api/v1{path}", headers={**auth, "X-Request-ID": f"bug-{path[6:]}"})
            body = _problem(r, 500, "internal")
            assert "hunter2" not in r.text and "Traceback" not in r.text
            assert body["request_id"] in body["detail"]
            logged = [rec for rec in caplog.records if rec.exc_info]
            assert len(logged) == 1, path
            assert body["request_id"] in logged[0].getMessage()
            assert isinstance(logged[0].exc_info[1], Secret)  # type: ignore[index]
        r = c.get("/api/v1/boom/stream-nospace", headers=auth)
        _problem(r, 507, "insufficient_storage")


def test_translation_of_real_database_faults(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    impatient = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    with pytest.raises(OperationalError) as locked, impatient.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
    holder.rollback()
    holder.close()
    impatient.dispose()
    assert isinstance(translate(locked.value), Busy)
    full = OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(translate(full), InsufficientStorage)
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("the storage failed") from exc
    except RuntimeError as wrapped:
        assert isinstance(translate(wrapped), InsufficientStorage)
    assert translate(ValueError("a bug")) is None


def test_a_busy_database_answers_503_with_retry_after(
    world: World, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hi = world.host_image("p0a", "busy", disks=1)
    app = world.client.app  # type: ignore[attr-defined]
    engine = app.state.engine
    if backend == "sqlite":
        # Another use case of this process holds the write slot past the wait.
        monkeypatch.setattr(db_engine, "WRITER_WAIT_S", 0.2)
        holder = app.state.session_factory()
        begin_write(holder)
        try:
            r = world.admin.patch(f"/host-images/{hi['id']}", {"description": "late"})
        finally:
            holder.rollback()
            holder.close()
    else:
        # Another transaction holds the row past the database's lock timeout.
        dbname = engine.url.database
        with engine.connect() as admin:
            admin.execute(text(f"ALTER DATABASE \"{dbname}\" SET lock_timeout = '200ms'"))
            admin.commit()
        engine.dispose()  # new connections take the setting
        try:
            with engine.connect() as holder:
                holder.execute(
                    text("SELECT id FROM host_images WHERE id = :id FOR UPDATE"), {"id": hi["id"]}
                )
                r = world.admin.patch(f"/host-images/{hi['id']}", {"description": "late"})
                holder.rollback()
        finally:
            with engine.connect() as admin:
                admin.execute(text(f'ALTER DATABASE "{dbname}" RESET lock_timeout'))
                admin.commit()
            engine.dispose()
    _problem(r, 503, "busy")
    assert int(r.headers["retry-after"]) >= 1
    # the fault clears: the same request succeeds, nothing half done
    r = world.admin.patch(f"/host-images/{hi['id']}", {"description": "late"})
    assert r.status_code == 200 and r.json()["description"] == "late"


def test_a_rename_racing_another_answers_409(world: World, backend: str) -> None:
    a = world.host_image("p0a", "race-a", disks=1)
    b = world.host_image("p0a", "race-b", disks=1)
    engine = world.client.app.state.engine  # type: ignore[attr-defined]
    answer: dict[str, Any] = {}

    def rename_a() -> None:
        answer["r"] = world.admin.patch(f"/host-images/{a['id']}", {"name": "taken"})

    # Another writer renames b to "taken" and has not committed yet: a's rename checks the
    # name (free, as far as committed data shows) and then meets b's row at the unique key.
    with engine.connect().execution_options(sqlite_begin=WRITE_BEGIN) as other:
        other.execute(text("UPDATE host_images SET name = 'taken' WHERE id = :id"), {"id": b["id"]})
        thread = threading.Thread(target=rename_a)
        thread.start()
        if backend == "postgres":
            _wait_for_lock_wait(other)
        else:
            time.sleep(0.5)  # SQLite: a's write waits for the lock whatever the moment
        other.commit()
        thread.join(timeout=60)
    r = answer["r"]
    body = _problem(r, 409, "conflict" if backend == "postgres" else "name_taken")
    assert "name" in body["detail"]
    assert world.admin.get(f"/host-images/{a['id']}").json()["name"] == "race-a"


def _wait_for_lock_wait(conn: Any) -> None:
    deadline = time.monotonic() + 30
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    with conn.engine.connect() as watcher:
        while not watcher.execute(query).scalar():
            assert time.monotonic() < deadline, "the rename never waited for the lock"
            time.sleep(0.02)
            watcher.rollback()


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB file system (tmpfs), for storage that runs out of space."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"cannot mount a small file system: {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_answers_507(
    world: World, small_disk: Path, data_dir: Path, database: tuple[str, Any]
) -> None:
    url, engine = database
    settings = load_settings(
        data_dir=data_dir,
        database_url=url,
        admin_password=ADMIN_PASSWORD,
        storage_url=f"file://{small_disk}/objects",
    )
    app = create_app(settings, engine=engine)
    with TestClient(app) as c:
        token = world.admin.token
        auth = {"Authorization": f"Bearer {token}"}
        r = c.post("/api/v1/images", json={"name": "big", "disk_format": "raw"}, headers=auth)
        assert r.status_code == 201, r.text
        r = c.put(
            f"/api/v1/images/{r.json()['id']}/data",
            content=raw_disk(1, size=4 * MiB),
            headers={**auth, "Content-Type": "application/octet-stream"},
        )
        _problem(r, 507, "insufficient_storage")
        # a small image still fits once the failed write is gone
        r = c.post("/api/v1/images", json={"name": "small", "disk_format": "raw"}, headers=auth)
        r = c.put(
            f"/api/v1/images/{r.json()['id']}/data",
            content=raw_disk(2, size=MiB // 2),
            headers={**auth, "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 200, r.text


def test_a_lost_compare_and_set_answers_409(world: World) -> None:
    """Two deletes of one image race: the loser's status compare-and-set finds the status
    already changed (StaleDataError), which answers 409, not 500."""
    iid = world.upload(world.admin, "cas-race", raw_disk(9), project="p0a")["id"]
    factory = world.worker.rt.factory
    from hostimage.db.engine import begin_read
    from hostimage.db.models import Image

    with factory() as first, factory() as second:
        for s in (first, second):
            begin_read(s)
        a, b = first.get(Image, iid), second.get(Image, iid)
        assert a is not None and b is not None
        begin_write(first)
        a.status = "deleting"
        first.commit()
        begin_write(second)
        b.status = "deleting"
        with pytest.raises(Exception) as caught:
            second.commit()
    found = translate(caught.value)
    assert found is not None and (found.status, found.code) == (409, "conflict")


def test_a_storage_failure_answers_503() -> None:
    from hostimage.storage import StorageError

    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
        except OSError as cause:
            raise StorageError("Reading 'images/x' failed") from cause
    except StorageError as exc:
        found = translate(exc)
    assert found is not None and (found.status, found.code) == (503, "storage_unavailable")
