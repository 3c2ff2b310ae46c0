"""Run an external tool with CPU, memory and wall-clock limits, never through a shell."""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

GIB = 1 << 30

# Enough for any JSON report qemu-img prints; a child writing more is broken or hostile.
MAX_STDOUT_BYTES = 16 << 20
# Only the tail of stderr matters: it holds the final error message.
MAX_STDERR_BYTES = 64 << 10


@dataclass(frozen=True)
class Limits:
    """Resource limits for one child process; ``None`` means unlimited.

    ``cpu_seconds``, ``address_space_bytes`` and ``file_size_bytes`` become RLIMIT_CPU,
    RLIMIT_AS and RLIMIT_FSIZE of the child (and of everything it starts, a sandbox's content
    included); ``timeout_seconds`` is wall-clock time, after which the child's whole process
    group is killed.
    """

    cpu_seconds: int | None = 600
    address_space_bytes: int | None = 2 * GIB
    timeout_seconds: float | None = 3600.0
    file_size_bytes: int | None = None


@dataclass(frozen=True)
class Completed:
    """What a finished (or killed) child left behind."""

    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool

    @property
    def stderr_text(self) -> str:
        """The captured stderr tail, decoded leniently and stripped."""
        return self.stderr.decode("utf-8", "replace").strip()

    @property
    def stdout_text(self) -> str:
        """The captured stdout, decoded leniently."""
        return self.stdout.decode("utf-8", "replace")


def _set_limits(limits: Limits) -> Callable[[], None]:
    def apply() -> None:
        if limits.cpu_seconds is not None:
            # The hard limit sits a little above the soft one so the child first gets
            # SIGXCPU (a clear signal in the exit status) and only then SIGKILL.
            soft = max(1, int(limits.cpu_seconds))
            resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))
        if limits.address_space_bytes is not None:
            size = int(limits.address_space_bytes)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if limits.file_size_bytes is not None:
            # No file the child writes may grow past this (it gets SIGXFSZ / EFBIG instead).
            size = int(limits.file_size_bytes)
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def run_limited(
    argv: Sequence[str],
    limits: Limits,
    *,
    stdin_data: bytes | None = None,
    env: Mapping[str, str] | None = None,
    on_stdout: Callable[[bytes], None] | None = None,
    stderr_to: BinaryIO | None = None,
) -> Completed:
    """Run ``argv`` (no shell) under ``limits`` and wait for it.

    Promises: the child gets the CPU and address-space limits before it executes; it runs in
    its own session, and when the wall-clock timeout passes its whole process group is killed
    and the result has ``timed_out`` set. Every stdout chunk is handed to ``on_stdout`` in the
    calling thread as it arrives; if it raises, the child's process group is killed and the
    exception propagates. stdout is kept up to 16 MiB, stderr's last 64 KiB; with
    ``stderr_to`` stderr goes to that file instead (for children that leave a daemon behind
    which keeps writing to it), and the result's stderr is empty.
    A missing executable raises ``FileNotFoundError``.
    """
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_to if stderr_to is not None else subprocess.PIPE,
        env=dict(env) if env is not None else None,
        # Limits are set between fork and exec so they hold from the child's first instruction.
        preexec_fn=_set_limits(limits),
        start_new_session=True,
    )
    deadline = None if limits.timeout_seconds is None else time.monotonic() + limits.timeout_seconds
    stdout = bytearray()
    stderr = bytearray()
    timed_out = False
    assert proc.stdout is not None
    if proc.stdin is not None:
        _feed_stdin(proc, stdin_data or b"")
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ, "out")
            if proc.stderr is not None:
                sel.register(proc.stderr, selectors.EVENT_READ, "err")
            while sel.get_map():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    if key.data == "out":
                        if len(stdout) < MAX_STDOUT_BYTES:
                            stdout += chunk[: MAX_STDOUT_BYTES - len(stdout)]
                        if on_stdout is not None:
                            on_stdout(chunk)
                    else:
                        stderr += chunk
                        del stderr[:-MAX_STDERR_BYTES]
    except BaseException:
        # A caller's callback raised (e.g. its task was taken away): the child must not
        # outlive the call that started it.
        _kill_group(proc)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
        raise
    if not timed_out:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            proc.wait(remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        _kill_group(proc)
    proc.stdout.close()
    if proc.stderr is not None:
        proc.stderr.close()
    return Completed(proc.returncode, bytes(stdout), bytes(stderr), timed_out)


def _feed_stdin(proc: subprocess.Popen[bytes], data: bytes) -> None:
    # Only small inputs (a password line) go through stdin, so one write cannot dead-lock
    # against a child that is itself blocked writing a full stdout pipe.
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(data)
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def describe_exit(returncode: int) -> str:
    """Describe an exit status in words, naming the signal (and a hit limit) if one killed it."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    if -returncode == signal.SIGXCPU:
        return f"killed by {name} (CPU time limit reached)"
    return f"killed by {name}"
