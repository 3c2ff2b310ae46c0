"""A guestfish server outlives a process killed while using it (it runs in a session of its
own); ``reap_orphans`` stops the servers of dead processes and never those of live ones.

The first test kills a real process holding a real appliance. The others check the rules on
the owner notes with plain ``sleep`` processes standing in for servers, so they need no
appliance launch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostimage.imaging import guestfish
from hostimage.imaging.guestfish import OWNER_FILE, SCRATCH_PREFIX, reap_orphans

HOLDER = textwrap.dedent(
    """
    import sys, time
    from hostimage.imaging.guestfish import Guestfish
    from hostimage.imaging.guestfs import DEFAULT_LIMITS
    with Guestfish(sys.argv[1], "qcow2", DEFAULT_LIMITS, readonly=True) as g:
        print(g._pid, flush=True)
        time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    return guestfish._start_time(pid) is not None


def _wait_gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


@pytest.mark.skipif(shutil.which("guestfish") is None, reason="guestfish missing")
def test_a_killed_holder_leaves_its_server_running_until_reaped(tmp_path: Path) -> None:
    disk = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(disk)],
        env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    server = 0
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line.strip().isdigit(), f"no appliance: {line!r}"
        server = int(line)
        assert _alive(server)
        assert reap_orphans(scratch) == 0  # its owner is alive
        assert _alive(server)
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        time.sleep(0.5)
        assert _alive(server), "the server went down with its owner: nothing to reap"
        assert len(list(scratch.glob(SCRATCH_PREFIX + "*"))) == 1
        assert reap_orphans(scratch) == 1
        assert _wait_gone(server)
        assert list(scratch.glob(SCRATCH_PREFIX + "*")) == []
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
        if server and _alive(server):
            os.killpg(os.getpgid(server), signal.SIGKILL)


@pytest.fixture()
def stand_in() -> Iterator[subprocess.Popen[bytes]]:
    """A process in a group of its own, as a guestfish server is."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _dead_pid() -> tuple[int, int]:
    """The pid and start time of a process that has exited."""
    proc = subprocess.Popen(["sleep", "0.2"])
    started = guestfish._start_time(proc.pid)
    assert started is not None
    proc.wait()
    return proc.pid, started


def _note(root: Path, name: str, owner: list[int | None], server: list[int | None] | None) -> Path:
    scratch = root / f"{SCRATCH_PREFIX}{name}"
    scratch.mkdir()
    (scratch / OWNER_FILE).write_text(json.dumps({"owner": owner, "server": server}))
    return scratch


def test_the_server_of_a_dead_owner_is_stopped(
    tmp_path: Path, stand_in: subprocess.Popen[bytes]
) -> None:
    started = guestfish._start_time(stand_in.pid)
    scratch = _note(tmp_path, "dead", list(_dead_pid()), [stand_in.pid, started, stand_in.pid])
    assert reap_orphans(tmp_path) == 1
    assert stand_in.wait(timeout=10) == -signal.SIGKILL
    assert not scratch.exists()


def test_the_server_of_a_live_owner_is_left_alone(
    tmp_path: Path, stand_in: subprocess.Popen[bytes]
) -> None:
    me = [os.getpid(), guestfish._start_time(os.getpid())]
    started = guestfish._start_time(stand_in.pid)
    scratch = _note(tmp_path, "live", me, [stand_in.pid, started, stand_in.pid])
    assert reap_orphans(tmp_path) == 0
    assert stand_in.poll() is None and scratch.exists()


def test_a_reused_pid_is_not_taken_for_the_server(
    tmp_path: Path, stand_in: subprocess.Popen[bytes]
) -> None:
    """Same pid, other start time: another process now; only the directory goes."""
    started = guestfish._start_time(stand_in.pid)
    assert started is not None
    scratch = _note(
        tmp_path, "reused", list(_dead_pid()), [stand_in.pid, started - 1, stand_in.pid]
    )
    assert reap_orphans(tmp_path) == 0
    assert stand_in.poll() is None
    assert not scratch.exists()


def test_directories_it_cannot_judge_are_kept(tmp_path: Path) -> None:
    empty = tmp_path / f"{SCRATCH_PREFIX}starting"
    empty.mkdir()
    garbled = tmp_path / f"{SCRATCH_PREFIX}garbled"
    garbled.mkdir()
    (garbled / OWNER_FILE).write_text("{not json")
    unknown_start = _note(tmp_path, "nostart", [_dead_pid()[0], None], None)
    other = tmp_path / "someone-else"
    other.mkdir()
    assert reap_orphans(tmp_path) == 0
    assert empty.exists() and garbled.exists() and unknown_start.exists() and other.exists()


def test_a_dead_owner_without_a_server_leaves_only_a_directory_to_remove(
    tmp_path: Path,
) -> None:
    scratch = _note(tmp_path, "noserver", list(_dead_pid()), None)
    assert reap_orphans(tmp_path) == 0
    assert not scratch.exists()
