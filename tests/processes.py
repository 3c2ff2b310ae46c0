"""The service as separate processes on a test world's database and storage: a worker, or
``hostimage serve``, started the way an operator starts them."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx


def service_env(world: Any, **extra: str) -> dict[str, str]:
    """The environment that points a ``hostimage`` process at ``world``'s database and
    storage (``extra``: more ``HOSTIMAGE_*`` variables)."""
    settings = world.client.app.state.settings
    env = {
        **os.environ,
        "HOSTIMAGE_DATA_DIR": str(settings.data_dir),
        "HOSTIMAGE_DATABASE_URL": settings.effective_database_url,
        "HOSTIMAGE_STORAGE_URL": settings.effective_storage_url,
    }
    for key in ("s3_endpoint", "s3_region", "s3_access_key", "s3_secret_key"):
        if getattr(settings, key):
            env[f"HOSTIMAGE_{key.upper()}"] = getattr(settings, key)
    return {**env, **extra}


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``hostimage worker`` in a session of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "hostimage.main", "worker"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_server(env: dict[str, str], *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """``hostimage serve OPTIONS`` on a free loopback port; returns once it answers, with its
    URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "hostimage.main", "serve", "--port", str(port), *options],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        if proc.poll() is not None:
            raise AssertionError("the server did not start")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not answer")


def stop(proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Stop a process as its operator would (SIGTERM), killing it if it does not end."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
