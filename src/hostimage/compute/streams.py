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
_UNSUPPORTED = frozenset(
    getattr(libvirt, name)
    for name in (
        "VIR_ERR_NO_SUPPORT",
        "VIR_ERR_INVALID_ARG",
        "VIR_ERR_ARGUMENT_UNSUPPORTED",
        "VIR_ERR_OPERATION_UNSUPPORTED",
    )
    if hasattr(libvirt, name)
)
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
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        stream, sparse = _open(
            conn,
            lambda st, flags: vol.download(st, 0, 0, flags),
            libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM,
        )
        try:
            pos = _receive(stream, fd, meter, sparse)
            os.ftruncate(fd, pos)
            stream.finish()
            return pos
        except BaseException:
            _abort(stream)
            raise
    finally:
        os.close(fd)


def _receive(stream: Any, fd: int, meter: Meter, sparse: bool) -> int:
    flags = libvirt.VIR_STREAM_RECV_STOP_AT_HOLE if sparse else 0
    pos = 0
    seek = False
    while True:
        got = stream.recvFlags(CHUNK, flags)
        if got == -3:
            hole = stream.recvHole(0)
            pos += hole
            seek = True
            meter.advance(hole)
            continue
        if isinstance(got, int):
            raise RuntimeError(f"unexpected stream status {got}")
        if not got:
            return pos
        if seek:
            os.lseek(fd, pos, os.SEEK_SET)
            seek = False
        _write_all(fd, got)
        pos += len(got)
        meter.advance(len(got))


def upload(conn: Any, vol: Any, source: Path, meter: Meter) -> None:
    """Replace the volume's bytes with the file's, sending the file's holes as holes (as
    zeros where the host's pool cannot take holes). On any error the stream is aborted and
    the error propagates."""
    fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        stream, sparse = _open(
            conn,
            lambda st, flags: vol.upload(st, 0, size, flags),
            libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM,
        )
        try:
            _send(stream, fd, size, meter, sparse)
            stream.finish()
        except BaseException:
            _abort(stream)
            raise
    finally:
        os.close(fd)


def _send(stream: Any, fd: int, size: int, meter: Meter, sparse: bool) -> None:
    pos = 0
    while pos < size:
        data = _next_data(fd, pos, size)
        if data > pos:
            if sparse:
                stream.sendHole(data - pos, 0)
                meter.advance(data - pos)
            else:
                _send_zeros(stream, data - pos, meter)
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


def _send_zeros(stream: Any, length: int, meter: Meter) -> None:
    zeros = bytes(CHUNK)
    while length > 0:
        piece = zeros if length >= CHUNK else bytes(length)
        _send_all(stream, piece)
        length -= len(piece)
        meter.advance(len(piece))


def _open(conn: Any, start: Callable[[Any, int], None], sparse_flag: int) -> tuple[Any, bool]:
    """A stream started by ``start(stream, flags)``, sparse when the host's pool allows it
    (some refuse sparse streams, e.g. on block devices): ``(stream, sparse)``."""
    stream = conn.newStream(0)
    try:
        start(stream, sparse_flag)
        return stream, True
    except libvirt.libvirtError as exc:
        _abort(stream)
        if exc.get_error_code() not in _UNSUPPORTED:
            raise
    stream = conn.newStream(0)
    try:
        start(stream, 0)
    except BaseException:
        _abort(stream)
        raise
    return stream, False


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
    while data:
        sent = stream.send(data)
        if sent < 0:  # -2: would block, which a blocking stream never says
            raise RuntimeError(f"unexpected stream status {sent}")
        data = data[sent:]


def _abort(stream: Any) -> None:
    # The stream may be finished or broken already: the first error is what matters.
    with contextlib.suppress(libvirt.libvirtError):
        stream.abort()
