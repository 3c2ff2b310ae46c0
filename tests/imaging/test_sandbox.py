"""The sandbox that guest file-system tools run in is really confined: it sees only what it
is given, cannot reach the network, writes only where it is allowed to, has no privileges,
and its limits and timeout hold for everything inside it.

Each test runs a shell inside the exact sandbox ``imaging/sandbox.py`` builds for debugfs,
e2fsck and sfdisk, and tries what a tool taken over by a hostile file system would try.
Under CI these tests fail, rather than skip, when the sandbox cannot be set up.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostimage.imaging import sandbox
from hostimage.imaging.limits import Completed, Limits

LIMITS = Limits(cpu_seconds=30, address_space_bytes=512 << 20, timeout_seconds=60.0)


IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(autouse=True)
def sandbox_works() -> None:
    if not sandbox.available():
        # scripts/setup installs bubblewrap: under CI a missing sandbox is a failure.
        problem = "bubblewrap (bwrap) cannot set up a sandbox on this host"
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)


def shell(script: str, limits: Limits = LIMITS, **binds: tuple[Path, ...]) -> Completed:
    return sandbox.run(["/bin/sh", "-c", script], limits, **binds)


def test_only_the_given_paths_are_visible(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("tenant data of someone else\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "input").write_text("given\n")
    done = shell(
        f"cat {shared}/input; for p in {tmp_path}/secret /etc/passwd /etc/shadow /root /home"
        " /var /proc/1 /sys /run /work; do test -e $p && echo visible: $p; done; ls /",
        readable=(shared,),
    )
    assert done.returncode == 0, done.stderr_text
    lines = done.stdout_text.splitlines()
    assert lines[0] == "given"
    assert not any(line.startswith("visible:") for line in lines), lines
    system = {"bin", "dev", "lib", "lib32", "lib64", "libx32", "sbin", "usr"}
    assert set(lines[1:]) <= {*system, "tmp"}, lines  # no etc, home, proc, root, var, …


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    yield server
    server.close()


def test_no_network(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    done = sandbox.run(
        ["/bin/bash", "-c", f"echo hello > /dev/tcp/127.0.0.1/{port} && echo connected"],
        LIMITS,
    )
    assert "connected" not in done.stdout_text
    assert done.returncode != 0
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing from inside the sandbox reached the host's loopback
    links = shell("cat /sys/class/net/*/operstate 2>&1; ls /sys 2>&1")
    assert "up" not in links.stdout_text.split()


def test_writes_only_to_the_writable_path(tmp_path: Path) -> None:
    copy = tmp_path / "work" / "copy.raw"
    copy.parent.mkdir()
    copy.write_bytes(b"disk")
    given = tmp_path / "given"
    given.mkdir()
    (given / "commands").write_text("keep\n")
    script = "; ".join(
        [
            f"echo edited >> {copy} && echo wrote-copy",
            f"echo x >> {given}/commands && echo wrote-readable",
            f"touch {copy.parent}/beside && echo wrote-beside",
            "touch /usr/evil && echo wrote-usr",
            "touch /evil && echo wrote-root",
            "touch /dev/shm/evil && echo wrote-dev",
            "touch /tmp/scratch && echo wrote-tmp",
        ]
    )
    done = shell(script, readable=(given,), writable=(copy,))
    wrote = set(done.stdout_text.split())
    assert {"wrote-copy", "wrote-tmp"} <= wrote, done.stderr_text
    assert wrote.isdisjoint({"wrote-readable", "wrote-usr", "wrote-root", "wrote-dev"})
    assert copy.read_bytes() == b"diskedited\n"
    assert (given / "commands").read_text() == "keep\n"
    # Beside the copy (here under /tmp, so in the sandbox's own /tmp) and in /tmp, writes
    # stay inside the sandbox: nothing reaches the host.
    assert not (copy.parent / "beside").exists()
    assert not Path("/tmp/scratch").exists()


def test_no_privileges(tmp_path: Path) -> None:
    done = shell(
        "; ".join(
            [
                "id -u",
                "mknod /tmp/disk b 8 0 && echo made-device",
                "mount -t tmpfs none /tmp && echo mounted",
                "unshare -U true && echo new-userns",
                "chroot / true && echo chrooted",
            ]
        )
    )
    lines = done.stdout_text.split()
    assert lines[1:] == [], done.stdout_text


def test_the_tmpfs_is_small() -> None:
    done = shell("head -c 20000000 /dev/zero > /tmp/big; echo $?; wc -c < /tmp/big")
    status, size = done.stdout_text.split()
    assert status != "0" and int(size) <= sandbox.TMPFS_BYTES


def test_limits_hold_inside(tmp_path: Path) -> None:
    spin = shell("while :; do :; done", Limits(cpu_seconds=1, timeout_seconds=60))
    assert spin.returncode != 0 and not spin.timed_out  # SIGXCPU, not the wall clock
    copy = tmp_path / "copy.raw"
    copy.write_bytes(b"")
    grow = shell(
        f"head -c 3000000 /dev/zero >> {copy}",
        Limits(file_size_bytes=1 << 20, timeout_seconds=60),
        writable=(copy,),
    )
    assert grow.returncode != 0 and copy.stat().st_size <= 1 << 20
    hog = sandbox.run(
        ["/usr/bin/python3", "-c", "x = bytearray(400 << 20); print('allocated')"],
        Limits(address_space_bytes=128 << 20, timeout_seconds=60),
    )
    assert "allocated" not in hog.stdout_text and hog.returncode != 0


def test_a_timeout_kills_everything_inside() -> None:
    marker = f"sleep {int(time.time()) % 1000 + 10000}"
    started = time.monotonic()
    done = shell(f"{marker} & {marker}; echo never", Limits(timeout_seconds=1.0))
    assert done.timed_out and time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while running(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running(marker) == []


def running(command: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").strip()
        except OSError:
            continue
        if proc.name.isdigit() and cmdline == command.encode():
            found.append(int(proc.name))
    return found


def test_the_command_line_is_what_the_docs_say(tmp_path: Path) -> None:
    argv = sandbox.command(["/usr/sbin/debugfs"], readable=(tmp_path,), writable=(tmp_path,))
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--share-net" not in argv and "--proc" not in argv
    assert argv[-2:] == ["--", "/usr/sbin/debugfs"]
