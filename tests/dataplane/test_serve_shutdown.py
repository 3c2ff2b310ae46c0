"""``hostimage serve`` stopped with SIGTERM (systemd, a test fixture) stops its embedded
workers (and its API processes) instead of leaving them running without a parent."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    """Child processes of ``pid`` (threads come and go while it runs: skip those gone)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_sigterm_stops_the_embedded_workers(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTIMAGE_")}
    env["HOSTIMAGE_ADMIN_PASSWORD"] = "shutdown-admin-1"
    log = (tmp_path / "server.log").open("wb")
    argv = [sys.executable, "-m", "hostimage.main", "serve", "--port", str(port)]
    argv += ["--data-dir", str(tmp_path / "data"), "--workers", "2"]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 90
        workers: set[int] = set()
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code
            except httpx.TransportError:
                ready = 0
            # the workers are spawned children running Python (besides a resource tracker)
            workers = {c for c in _children(proc.pid) if b"spawn_main" in _cmdline(c)}
            if ready == 200 and len(workers) == 2:
                break
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        assert len(workers) == 2, (tmp_path / "server.log").read_text()

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [w for w in workers if _alive(w)]
        assert not left, (
            f"workers outlived hostimage serve: {left}\n" + (tmp_path / "server.log").read_text()
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        log.close()


def test_several_api_processes_share_the_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTIMAGE_")}
    env["HOSTIMAGE_ADMIN_PASSWORD"] = "processes-admin-1"
    log = (tmp_path / "server.log").open("wb")
    argv = [sys.executable, "-m", "hostimage.main", "serve", "--port", str(port)]
    argv += ["--data-dir", str(tmp_path / "data"), "--workers", "0", "--api-processes", "2"]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    apis: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            apis = {c for c in _children(proc.pid) if b"spawn_main" in _cmdline(c)}
            try:
                ready = httpx.get(f"{base}/readyz", timeout=1).status_code
            except httpx.TransportError:
                ready = 0
            if ready == 200 and len(apis) == 2:
                break
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        assert len(apis) == 2, (tmp_path / "server.log").read_text()
        # every process answers with the same settings (the data dir given on the command
        # line, not the environment): a login made in one is valid in the other
        body = {"username": "admin", "password": "processes-admin-1"}
        token = httpx.post(f"{base}/api/v1/auth/login", json=body, timeout=30).json()["token"]
        for _ in range(10):  # fresh connections, spread over the processes by the kernel
            r = httpx.get(
                f"{base}/api/v1/host-images",
                params={"scope": "system"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
        assert (tmp_path / "data" / "hostimage.db").exists()

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in apis) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in apis if _alive(p)], (tmp_path / "server.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in apis:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        log.close()
