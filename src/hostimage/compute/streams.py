"""Moving a volume's bytes through libvirt streams, holes kept as holes.

The loops are written here rather than with the binding's ``sparseRecvAll``/``sparseSendAll``
so that the caller's ``check`` runs between chunks (and may abort the transfer), progress is
reported, and writes go straight to the file descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt

# The largest data payload one stream message carries (VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX
# less the header): asking for more returns no more, and sending more is split anyway.
CHUNK = 262_120
# Progress is reported when it grew by this much, or this long after the last report.
_PROGRESS_STEP = 0.005
_PROGRESS_SECONDS = 1.0


class Meter:
    """Counts bytes over a whole transfer (possibly several volumes): calls ``check`` on every
    chunk and ``progress`` with ``start + span * done / total``, throttled, never
    decreasing."""

    def __init__(
        self,
        check: Callable[[], None],
        progress: Callable[[float], None],
        total: int,
        *,
        start: float = 0.0,
        span: float = 1.0,
    ) -> None:
        self.check = check
        self._progress = progress
        self.total = max(total, 1)
        self.start = start
        self.span = span
        self.done = 0
        self._reported = -1.0
        self._at = 0.0

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes`` more, run the check, and report progress if it moved enough."""
        self.done += nbytes
        self.check()
        fraction = self.start + self.span * min(1.0, self.done / self.total)
        now = time.monotonic()
        if fraction - self._reported >= _PROGRESS_STEP or now - self._at >= _PROGRESS_SECONDS:
            self.report(fraction)
            self._at = now

    def report(self, fraction: float) -> None:
        """Report ``fraction`` (clamped to 0..1) unless it would go backwards."""
        fraction = min(1.0, max(0.0, fraction))
        if fraction > self._reported:
            self._reported = fraction
            self._progress(fraction)


def download(conn: Any, vol: Any, dest: Path, meter: Meter) -> int:
    """Write the whole volume (its bytes as stored: a qcow2 volume gives its own layer) into
    ``dest``, recreating holes. Returns the file's length. On any error, including one
    raised by the meter's check, the stream is aborted and the error propagates; ``dest``
    may be left partly written."""
    stream = conn.newStream(0)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        vol.download(stream, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
        pos = 0
        seek = False
        while True:
            got = stream.recvFlags(CHUNK, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
            if got == -3:
                hole = stream.recvHole(0)
                pos += hole
                seek = True
                meter.advance(hole)
                continue
            if isinstance(got, int):
                raise RuntimeError(f"unexpected stream status {got}")
            if not got:
                break
            if seek:
                os.lseek(fd, pos, os.SEEK_SET)
                seek = False
            _write_all(fd, got)
            pos += len(got)
            meter.advance(len(got))
        os.ftruncate(fd, pos)
        stream.finish()
        return pos
    except BaseException:
        _abort(stream)
        raise
    finally:
        os.close(fd)


def upload(conn: Any, vol: Any, source: Path, meter: Meter) -> None:
    """Replace the volume's bytes with the file's, sending the file's holes as holes.
    On any error the stream is aborted and the error propagates."""
    stream = conn.newStream(0)
    fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        vol.upload(stream, 0, size, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
        pos = 0
        while pos < size:
            data = _next_data(fd, pos, size)
            if data > pos:
                stream.sendHole(data - pos, 0)
                meter.advance(data - pos)
                pos = data
                continue
            end = min(_next_hole(fd, pos, size), size)
            while pos < end:
                buf = os.pread(fd, min(CHUNK, end - pos), pos)
                if not buf:
                    raise OSError(errno.EIO, "the file shrank while it was uploaded")
                _send_all(stream, buf)
                pos += len(buf)
                meter.advance(len(buf))
        stream.finish()
    except BaseException:
        _abort(stream)
        raise
    finally:
        os.close(fd)


def copy_sparse(source: Path, dest: Path, meter: Meter) -> None:
    """Copy a local file into ``dest`` keeping its holes (in-kernel copies of each data
    extent), for disks the service may read directly."""
    with open(source, "rb") as src, open(dest, "wb") as out:
        size = os.fstat(src.fileno()).st_size
        pos = 0
        while pos < size:
            data = _next_data(src.fileno(), pos, size)
            if data > pos:
                meter.advance(data - pos)
                pos = data
                continue
            end = min(_next_hole(src.fileno(), pos, size), size)
            while pos < end:
                n = os.copy_file_range(
                    src.fileno(), out.fileno(), min(64 << 20, end - pos), pos, pos
                )
                if n == 0:
                    raise OSError(errno.EIO, "the file shrank while it was copied")
                pos += n
                meter.advance(n)
        out.truncate(size)


def _next_data(fd: int, pos: int, size: int) -> int:
    try:
        return os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # only a hole up to the end
            return size
        raise


def _next_hole(fd: int, pos: int, size: int) -> int:
    try:
        return os.lseek(fd, pos, os.SEEK_HOLE)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return size
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _send_all(stream: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        sent = stream.send(bytes(view) if len(view) != len(data) else data)
        if sent < 0:  # -2: would block, which a blocking stream never says
            raise RuntimeError(f"unexpected stream status {sent}")
        view = view[sent:]


def _abort(stream: Any) -> None:
    # The stream may be finished or broken already: the first error is what matters.
    with contextlib.suppress(libvirt.libvirtError):
        stream.abort()
