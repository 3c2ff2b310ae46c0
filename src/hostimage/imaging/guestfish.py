"""A libguestfs appliance session: one ``guestfish --listen`` server driven with
``--remote`` commands (argv lists) or batch scripts whose arguments are fully escaped."""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import signal
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from hostimage.errors import HostImageError
from hostimage.imaging import qemu_img
from hostimage.imaging.limits import Limits, run_limited


@dataclass(frozen=True)
class GuestfsLimits:
    """Wall-clock limits for the appliance launch and for each command, and the CPU time the
    appliance (guestfish server and its qemu) may use in total."""

    launch_timeout: float = 600.0
    # KVM starts an appliance in seconds when it works; on some hosts (nested or
    # para-virtualised KVM) /dev/kvm is there but a launch never finishes. After this long
    # the launch is retried with TCG, and this process uses TCG from then on.
    kvm_launch_timeout: float = 120.0
    command_timeout: float = 300.0
    cpu_seconds: int | None = 3600


DEFAULT_LIMITS = GuestfsLimits()


class GuestfsError(HostImageError):
    """libguestfs could not be started or a step on the guest filesystem failed."""

    code = "guestfs_failed"
    title = "Guest filesystem operation failed"


# Scratch directories are made under the temporary directory with this prefix; each holds
# the server's log and OWNER_FILE.
SCRATCH_PREFIX = "hostimage-guestfs-"
OWNER_FILE = "owner.json"

_SAFE_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-")

# Once KVM has failed to start an appliance in this process, later launches go straight to
# TCG instead of paying for the failed attempt again.
_kvm_broken = False


class Guestfish:
    """One appliance behind a ``guestfish --listen`` server, driven with ``--remote``."""

    def __init__(self, path: Path | str, fmt: str, limits: GuestfsLimits, readonly: bool) -> None:
        self._path = str(Path(path).absolute())
        self._fmt = fmt
        self._qemu_fmt = qemu_img.qemu_format(fmt)
        self._limits = limits
        self._readonly = readonly
        self._binary = shutil.which("guestfish")
        self._tmp = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        self._log = (self._tmp / "server.log").open("w+b")
        self._pid: int | None = None
        self._pgid = 0
        self._note_owner()
        # A server that missed a deadline is still busy and would not hear "exit" in time.
        self._hung = False
        self._env: dict[str, str] = {}

    def __enter__(self) -> Guestfish:
        global _kvm_broken
        if self._binary is None:
            self.close()
            raise GuestfsError("guestfish is not installed (Debian package libguestfs-tools).")
        try:
            # Refuses images that point at other host files before the appliance opens them.
            qemu_img.info(self._path, self._fmt)
            chosen = os.environ.get("LIBGUESTFS_BACKEND_SETTINGS")
            kvm = chosen is None and not _kvm_broken and os.access("/dev/kvm", os.R_OK | os.W_OK)
            full = self._limits.launch_timeout
            try:
                if kvm:
                    self._launch("", min(self._limits.kvm_launch_timeout, full))
                else:
                    self._launch(chosen if chosen is not None else "force_tcg", full)
            except GuestfsError:
                if not kvm:
                    raise
                # A failed or hung KVM launch: _launch stops (or kills) that server first.
                _kvm_broken = True
                self._launch("force_tcg", full)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _launch(self, settings: str, timeout: float) -> None:
        self._stop_server()
        # Debug and trace output would flood the server log that errors are read from;
        # the backend settings are the ones chosen by the caller.
        dropped = ("LIBGUESTFS_DEBUG", "LIBGUESTFS_TRACE", "LIBGUESTFS_BACKEND_SETTINGS")
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env["LIBGUESTFS_BACKEND"] = "direct"
        if settings:
            env["LIBGUESTFS_BACKEND_SETTINGS"] = settings
        self._env = env
        argv = [str(self._binary), "--listen", f"--format={self._qemu_fmt}", "-a", self._path]
        if self._readonly:
            argv.insert(2, "--ro")
        limits = Limits(self._limits.cpu_seconds, None, 60.0)
        done = run_limited(argv, limits, env=env, stderr_to=self._log)
        found = re.search(rb"GUESTFISH_PID=(\d+)", done.stdout)
        if done.timed_out or done.returncode != 0 or found is None:
            raise GuestfsError(f"guestfish could not start: {self._log_since(0) or 'no output'}")
        self._pid = int(found.group(1))
        # The server and its qemu stay in the process group of the process we started.
        with contextlib.suppress(ProcessLookupError):
            group = os.getpgid(self._pid)
            self._pgid = group if group != os.getpgrp() else 0
        self._note_owner()
        self.call("run", timeout=timeout)

    def call(self, command: str, *args: str, timeout: float | None = None) -> str:
        """Run one command; return its stdout; raise ``GuestfsError`` if it failed."""
        # The "-" prefix keeps the server alive on errors; errors then only show in its log.
        argv = [str(self._binary), f"--remote={self._pid}", "--", f"-{command}", *args]
        return self._remote(argv, None, timeout or self._limits.command_timeout, command)

    def probe(self, command: str, *args: str) -> str | None:
        """Like ``call`` but a failure (e.g. a missing path) gives None."""
        try:
            return self.call(command, *args)
        except GuestfsError:
            if not self._server_alive():
                raise
            return None

    def batch(self, commands: list[tuple[str, ...]]) -> None:
        """Run many commands in one client process; failures are tolerated (check after)."""
        for start in range(0, len(commands), 500):
            script = b"".join(
                b"-" + name.encode() + b"".join(b" " + _quote(arg) for arg in args) + b"\n"
                for name, *args in commands[start : start + 500]
            )
            argv = [str(self._binary), f"--remote={self._pid}"]
            try:
                self._remote(argv, script, self._limits.command_timeout, "batch")
            except GuestfsError:
                if not self._server_alive():
                    raise

    def _remote(self, argv: list[str], script: bytes | None, timeout: float, what: str) -> str:
        offset = self._log.seek(0, os.SEEK_END)
        done = run_limited(argv, Limits(60, None, timeout), env=self._env, stdin_data=script)
        errors = _errors(self._log_since(offset))
        if done.timed_out:
            self._hung = True
            raise GuestfsError(f"guestfish {what} did not finish within {timeout} seconds.")
        if done.returncode != 0 or errors:
            raise GuestfsError(f"guestfish {what} failed: {errors or done.stderr_text}")
        return done.stdout_text

    def _log_since(self, offset: int) -> str:
        self._log.seek(offset)
        return self._log.read(1 << 20).decode("utf-8", "replace").strip()[:4000]

    def _server_alive(self) -> bool:
        return self._pid is not None and _start_time(self._pid) is not None

    def _stop_server(self) -> None:
        if self._pid is None:
            return
        if self._server_alive() and not self._hung:
            # "exit" shuts the appliance down cleanly, flushing every write to the image.
            argv = [str(self._binary), f"--remote={self._pid}", "--", "exit"]
            run_limited(argv, Limits(60, None, 60.0), env=self._env)
            deadline = time.monotonic() + 30
            while self._server_alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        # pgid 0 would mean our own group: never signal that.
        if self._server_alive() and self._pgid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._pgid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self._server_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            _remove_socket(self._pid)
        self._pid = None
        self._hung = False

    def _note_owner(self) -> None:
        # The server outlives this process if it is killed (it runs in a session of its
        # own); what reap_orphans needs to find and stop it is written next to its log.
        me = os.getpid()
        server = None
        if self._pid is not None:
            server = [self._pid, _start_time(self._pid), self._pgid]
        note = {"owner": [me, _start_time(me)], "server": server}
        (self._tmp / OWNER_FILE).write_text(json.dumps(note))

    def close(self) -> None:
        """Stop the server (and its appliance) and remove the scratch directory."""
        try:
            self._stop_server()
        finally:
            self._log.close()
            shutil.rmtree(self._tmp, ignore_errors=True)

    # Guest filesystem helpers -------------------------------------------------------------

    def lstat(self, path: str) -> tuple[int, int] | None:
        """(file type bits ``stat.S_IFMT``, size) of ``path`` without following it, or None."""
        out = self.probe("lstatns", path) or ""
        mode = re.search(r"st_mode: (\d+)", out)
        size = re.search(r"st_size: (\d+)", out)
        if mode is None:
            return None
        return stat.S_IFMT(int(mode.group(1))), int(size.group(1)) if size else 0

    def kind(self, path: str) -> int | None:
        """The file type bits (``stat.S_IFMT``) of ``path`` without following it, or None."""
        found = self.lstat(path)
        return found[0] if found else None

    def listing(self, command: str, directory: str) -> list[str]:
        """``ls0`` (names) or ``find0`` (paths relative to ``directory``), NUL-safe."""
        target = self._tmp / "listing"
        self.call(command, directory, str(target))
        raw = target.read_bytes()
        target.unlink()
        return [os.fsdecode(item) for item in raw.split(b"\0") if item]

    def read(self, path: str) -> bytes:
        target = self._tmp / "download"
        self.call("download", path, str(target))
        data = target.read_bytes()
        target.unlink()
        return data

    def write(self, path: str, data: bytes) -> None:
        """Replace the content of ``path``; an existing file keeps its owner and mode."""
        source = self._tmp / "upload"
        source.write_bytes(data)
        self.call("upload", str(source), path)
        source.unlink()

    def remove(self, paths: list[str], command: str) -> list[str]:
        """Run ``command`` (rm or rm-rf) on every path; return the paths that are now gone."""
        if not paths:
            return []
        self.batch([(command, p) for p in paths])
        left: set[str] = set()
        for parent in sorted({posixpath.dirname(p) for p in paths}):
            left.update(posixpath.join(parent, n) for n in self.listing("ls0", parent))
        return [p for p in paths if p not in left]


def _start_time(pid: int) -> int | None:
    """When a live process started (clock ticks after boot): with its pid, this names one
    process, not a later one that reuses the pid. None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of proc(5); the list starts at field 3


def _remove_socket(server_pid: int) -> None:
    # A killed server cannot remove its socket; guestfish documents this fixed place.
    with contextlib.suppress(OSError):
        Path(f"/tmp/.guestfish-{os.geteuid()}/socket-{server_pid}").unlink()


def reap_orphans(scratch_root: Path | None = None) -> int:
    """Stop the guestfish servers (and their appliances) left by processes that died
    without stopping them, such as a killed worker, and remove those processes' scratch
    directories. Servers of live processes are never touched. Returns how many servers
    were stopped.

    A killed server's image is not flushed: it belonged to the dead process's task, which
    is retried from the start or given up.
    """
    root = scratch_root or Path(tempfile.gettempdir())
    stopped = 0
    for scratch in root.glob(SCRATCH_PREFIX + "*"):
        try:
            note = json.loads((scratch / OWNER_FILE).read_text())
            owner_pid, owner_started = note["owner"]
            server = note["server"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being created, or not written by this version: not ours to judge
        if owner_started is None or _start_time(owner_pid) == owner_started:
            continue
        if server is not None:
            pid, started, pgid = server
            if started is not None and _start_time(pid) == started and pgid > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while _start_time(pid) == started and time.monotonic() < deadline:
                    time.sleep(0.05)
                stopped += 1
            _remove_socket(pid)
        shutil.rmtree(scratch, ignore_errors=True)
    return stopped


def _errors(log: str) -> str:
    lines = [ln.removeprefix("libguestfs: error: ") for ln in log.splitlines()]
    return "; ".join(ln for ln in lines if "error" in ln.lower())


def _quote(arg: str) -> bytes:
    # Every byte outside a small safe set is written as \xHH, so no guest file name can end
    # the quoted string or start another command in the script.
    raw = os.fsencode(arg)
    return b'"' + b"".join(bytes([c]) if c in _SAFE_BYTES else b"\\x%02x" % c for c in raw) + b'"'
