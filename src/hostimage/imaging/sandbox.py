"""Run a tool that parses untrusted guest data (debugfs, e2fsck, sfdisk) inside a
bubblewrap (``bwrap``) sandbox.

The sandbox has its own user, mount, PID, network, IPC, UTS and cgroup namespaces, no
capabilities, no way to create further user namespaces, and a session of its own; it dies
with the process that started it. Its file system is built from nothing: ``/usr`` (and the
``/bin``, ``/sbin``, ``/lib*`` links or directories) read-only, a minimal ``/dev``, a 16 MiB
``/tmp``, and only the paths the caller names — read-only, except the ones it names
writable. The root and ``/dev`` are read-only; there is no ``/etc``, ``/home``, ``/proc``,
``/var`` or network device besides a loopback that is down. CPU time, address space, file
size and wall-clock time are limited with ``limits.run_limited`` (the limits hold for
everything inside, and a timeout kills the whole sandbox).

``available()`` tries the sandbox once per process. When it cannot be set up (no bwrap,
user namespaces disabled, an old bwrap), callers must not run the tool at all.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from hostimage.imaging.limits import Completed, Limits, run_limited

log = logging.getLogger(__name__)

TMPFS_BYTES = 16 << 20
# Directories of the host's system that tools may need, bound read-only (or recreated as
# the same symlinks on a merged-/usr system).
SYSTEM_DIRS = ("usr",)
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ENVIRONMENT = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    # The sandbox has no /proc or /etc/mtab; the images it opens are private copies that
    # are never mounted, so e2fsprogs need not look.
    "EXT2FS_NO_MTAB_OK": "1",
}
_PROBE_LIMITS = Limits(cpu_seconds=10, address_space_bytes=256 << 20, timeout_seconds=30.0)


class SandboxUnavailable(Exception):
    """The sandbox cannot be set up on this host; the tool must not run."""


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _system_mounts() -> list[str]:
    args: list[str] = []
    for name in SYSTEM_DIRS:
        args += ["--ro-bind", f"/{name}", f"/{name}"]
    for name in SYSTEM_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return args


def visible(path: str | Path) -> bool:
    """True when ``path`` (e.g. a tool's executable) exists inside the sandbox too."""
    real = Path(path).resolve()
    return any(real.is_relative_to(Path("/") / name) for name in (*SYSTEM_DIRS, *SYSTEM_LINKS))


def command(
    argv: Sequence[str],
    *,
    readable: Sequence[Path] = (),
    writable: Sequence[Path] = (),
) -> list[str]:
    """The bwrap command line that runs ``argv`` confined (see the module docstring), with
    ``readable`` paths bound read-only and ``writable`` ones read-write, each at its own
    (resolved) path. Raises ``SandboxUnavailable`` when bwrap is not installed."""
    bwrap = _bwrap()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
    ]
    for name, value in ENVIRONMENT.items():
        args += ["--setenv", name, value]
    args += _system_mounts()
    args += ["--dev", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    for path in readable:
        real = str(Path(path).resolve())
        args += ["--ro-bind", real, real]
    for path in writable:
        real = str(Path(path).resolve())
        args += ["--bind", real, real]
    # Non-recursive: the binds above keep their own modes.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/", "--", *argv]
    return args


@functools.cache
def available() -> bool:
    """Whether the sandbox can be set up here (tried once per process; logged when not)."""
    true = shutil.which("true")
    try:
        if true is None or not visible(true):
            raise SandboxUnavailable("no 'true' executable under /usr to try the sandbox with")
        done = run_limited(command([true]), _PROBE_LIMITS)
    except (SandboxUnavailable, OSError) as exc:
        log.warning("guest file-system tools cannot be sandboxed here: %s", exc)
        return False
    if done.returncode != 0 or done.timed_out:
        log.warning(
            "guest file-system tools cannot be sandboxed here: bwrap failed: %s",
            done.stderr_text[-300:] or f"exit status {done.returncode}",
        )
        return False
    return True


def run(
    argv: Sequence[str],
    limits: Limits,
    *,
    readable: Sequence[Path] = (),
    writable: Sequence[Path] = (),
) -> Completed:
    """Run ``argv`` confined and under ``limits``; raise ``SandboxUnavailable`` (without
    running anything) when the sandbox cannot be set up on this host."""
    if not available():
        raise SandboxUnavailable("the sandbox cannot be set up on this host")
    return run_limited(command(argv, readable=readable, writable=writable), limits)
