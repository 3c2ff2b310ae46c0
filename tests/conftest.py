"""Shared fixtures: a real database per backend (SQLite file, PostgreSQL), the app, a world.

``HOSTIMAGE_TEST_BACKENDS`` picks the backends (default ``sqlite,postgres``); PostgreSQL is
reached at ``HOSTIMAGE_TEST_PG`` (default 127.0.0.1:5432, user postgres, trust auth).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text

from hostimage.db import revision
from hostimage.db.base import Base
from hostimage.db.engine import make_engine
from hostimage.db.migrate import upgrade
from tests.s3_peer import S3Server, s3_server  # noqa: F401  (fixture)

PG_ADMIN = os.environ.get("HOSTIMAGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b for b in os.environ.get("HOSTIMAGE_TEST_BACKENDS", "sqlite,postgres").split(",") if b]

os.environ.setdefault("HOSTIMAGE_ARGON2_TIME_COST", "1")
os.environ.setdefault("HOSTIMAGE_ARGON2_MEMORY_KIB", "1024")


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN.rpartition("/")
    return f"{base}/{dbname}"


HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hostname")


def _fingerprint() -> dict[str, bytes]:
    out = {}
    for name in HOST_FILES:
        with contextlib.suppress(OSError):
            out[name] = hashlib.sha256(Path(name).read_bytes()).digest()
    return out


@pytest.fixture(scope="session", autouse=True)
def host_files_untouched() -> Iterator[None]:
    """Image tests craft files that point at host paths; none may ever write one. (A qemu-img
    call that names a host file as a data file truncates it — this guard catches that.)"""
    before = _fingerprint()
    yield
    changed = [n for n, digest in _fingerprint().items() if before.get(n) != digest]
    assert not changed, f"the test run modified host files: {changed}"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Engine]]:
    """A migrated database of ``backend`` for the whole run, dropped at the end."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        upgrade(url)
        engine = make_engine(url)
        yield url, engine
        engine.dispose()
        return
    name = f"hostimage_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _pg_url(name)
    upgrade(url)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wipe(engine: Engine) -> None:
    """Empty every table (fast, keeps the migrated schema). The catalogue revision is
    bumped, as every change to host images made outside the app's sessions must do."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                conn.execute(text(f"DELETE FROM {t}"))
        revision.bump(conn)


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
