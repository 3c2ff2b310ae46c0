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
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base: str
    children: set[int]  # spawned Python children: task workers and API processes
    log: Path


@contextlib.contextmanager
def serving(tmp_path: Path, password: str, *options: str, children: int) -> Iterator[Served]:
    """``hostimage serve`` on a free port, ready with ``children`` spawned processes; every
    process it started is killed at the end, whatever the test did."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTIMAGE_")}
    env["HOSTIMAGE_ADMIN_PASSWORD"] = password
    log_path = tmp_path / "server.log"
    argv = [sys.executable, "-m", "hostimage.main", "serve", "--port", str(port)]
    argv += ["--data-dir", str(tmp_path / "data"), *options]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        served = Served(proc, f"http://127.0.0.1:{port}", set(), log_path)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    ready = httpx.get(f"{served.base}/readyz", timeout=1).status_code
                except httpx.TransportError:
                    ready = 0
                # spawned children run Python's spawn_main (besides a resource tracker)
                served.children = {c for c in _children(proc.pid) if b"spawn_main" in _cmdline(c)}
                if ready == 200 and len(served.children) == children:
                    break
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.2)
            assert len(served.children) == children, log_path.read_text()
            yield served
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for c in served.children:
                if _alive(c):
                    os.kill(c, signal.SIGKILL)


def _stop_and_check_children_gone(served: Served) -> None:
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(c) for c in served.children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [c for c in served.children if _alive(c)]
    assert not left, f"outlived hostimage serve: {left}\n" + served.log.read_text()


def test_sigterm_stops_the_embedded_workers(tmp_path: Path) -> None:
    with serving(tmp_path, "shutdown-admin-1", "--workers", "2", children=2) as served:
        _stop_and_check_children_gone(served)


def test_several_api_processes_share_the_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    options = ("--workers", "0", "--api-processes", "2")
    with serving(tmp_path, "processes-admin-1", *options, children=2) as served:
        # every process answers with the same settings (the data dir given on the command
        # line, not the environment): a login made in one is valid in the other
        body = {"username": "admin", "password": "processes-admin-1"}
        login = httpx.post(f"{served.base}/api/v1/auth/login", json=body, timeout=30)
        token = login.json()["token"]
        for _ in range(10):  # fresh connections, spread over the processes by the kernel
            r = httpx.get(
                f"{served.base}/api/v1/host-images",
                params={"scope": "system"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
        assert (tmp_path / "data" / "hostimage.db").exists()
        _stop_and_check_children_gone(served)
