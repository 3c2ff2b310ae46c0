"""Inspect an image while it is being uploaded, in bounded memory.

The inspector keeps the first :data:`HEAD_WINDOW` bytes, a rolling tail of the
last :data:`TAIL_BYTES` bytes (the VHD and VMDK footers live there), and a few
small ranges further in that a parser asked for once it had read the header
(the VHDX metadata table, for example). Nothing else is retained, so memory stays
bounded however large the upload is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .detect import check_declared, detect_source, normalize_format
from .errors import ErrorCode, FormatError, UnsafeImageError
from .info import ImageInfo
from .source import HEAD_WINDOW, KIB, MIB, NeedMoreData, Source

TAIL_BYTES = 4 * KIB
EXTRA_BYTES_LIMIT = 1 * MIB
EXTRA_RANGES_LIMIT = 32


@dataclass
class _Range:
    offset: int
    length: int
    data: bytearray = field(default_factory=bytearray)

    @property
    def filled_to(self) -> int:
        return self.offset + len(self.data)

    @property
    def complete(self) -> bool:
        return len(self.data) >= self.length


class StreamInspector:
    """Incremental inspector: call :meth:`feed` per chunk, then :meth:`finish`.

    Holds at most about ``HEAD_WINDOW + TAIL_BYTES + EXTRA_BYTES_LIMIT`` bytes.
    """

    def __init__(self) -> None:
        self._head = bytearray()
        self._tail = bytearray()
        self._pos = 0
        self._ranges: list[_Range] = []
        self._chunk: memoryview | None = None
        self._chunk_start = 0
        self._result: ImageInfo | None = None
        self._error: FormatError | None = None
        self._finished = False

    @property
    def bytes_seen(self) -> int:
        """Number of bytes fed so far."""
        return self._pos

    @property
    def retained_bytes(self) -> int:
        """Number of image bytes currently held in memory."""
        return len(self._head) + len(self._tail) + sum(len(r.data) for r in self._ranges)

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Consume the next chunk of the image.

        Raises UnsafeImageError as soon as the bytes seen so far prove the image
        unsafe, so an upload can be aborted early; later calls re-raise it.
        """
        if self._finished:
            raise RuntimeError("feed() called after finish()")
        if self._error is not None:
            raise self._error
        view = memoryview(chunk).cast("B")
        if not view:
            return
        start = self._pos
        self._pos += len(view)
        self._chunk, self._chunk_start = view, start
        try:
            head_was_full = len(self._head) >= HEAD_WINDOW
            if not head_was_full:
                self._head += view[: HEAD_WINDOW - len(self._head)]
            self._keep_tail(view)
            completed = self._capture(view, start)
            head_full = len(self._head) >= HEAD_WINDOW
            if self._result is None and head_full and (completed or not head_was_full):
                self._attempt()
        except FormatError as exc:
            self._error = exc
            raise
        finally:
            self._chunk = None

    def finish(self, declared_format: str | None = None) -> ImageInfo:
        """Finish the upload: return the image info or raise a FormatError subclass.

        Applies the same checks as :func:`inspect`, including the declared-format
        rule when ``declared_format`` is given.
        """
        if self._error is not None:
            raise self._error
        if declared_format is not None:
            normalize_format(declared_format)
        self._finished = True
        try:
            if self._result is None:
                self._result = detect_source(Source(self._read_retained, self._pos))
        except FormatError as exc:
            self._error = exc
            raise
        return check_declared(self._result, declared_format)

    def _keep_tail(self, view: memoryview) -> None:
        """Keep at least the last TAIL_BYTES bytes seen, contiguous up to the end."""
        if len(view) >= TAIL_BYTES:
            self._tail = bytearray(view[-TAIL_BYTES:])
            return
        self._tail += view
        # Trimming only once the buffer doubles keeps tiny chunks cheap.
        if len(self._tail) > 2 * TAIL_BYTES:
            del self._tail[:-TAIL_BYTES]

    def _capture(self, view: memoryview, start: int) -> bool:
        """Append this chunk's share to each wanted range; True if any became complete."""
        completed = False
        for wanted in self._ranges:
            if wanted.complete:
                continue
            begin = wanted.filled_to
            if start <= begin < self._pos:
                end = min(wanted.offset + wanted.length, self._pos)
                wanted.data += view[begin - start : end - start]
                completed = completed or wanted.complete
        return completed

    def _attempt(self) -> None:
        """Run the parsers on what is retained, registering any range they still need."""
        while True:
            try:
                self._result = detect_source(Source(self._read_retained, None))
                return
            except NeedMoreData as need:
                if need.offset is None or not self._want(need.offset, need.length):
                    return

    def _want(self, offset: int, length: int) -> bool:
        """Register a range to retain as it streams in; True if it is already complete."""
        if any(r.offset == offset and r.length == length for r in self._ranges):
            return False
        wanted = _Range(offset, length)
        available = min(offset + length, self._pos)
        if offset < available:
            # The start of the range has streamed past already; it must still be held.
            prefix = self._lookup(offset, available)
            if prefix is None:
                raise self._passed(offset, offset + length)
            wanted.data += prefix[0]
        self._add_range(wanted)
        return wanted.complete

    def _add_range(self, wanted: _Range) -> None:
        used = sum(r.length for r in self._ranges)
        if len(self._ranges) >= EXTRA_RANGES_LIMIT or used + wanted.length > EXTRA_BYTES_LIMIT:
            raise UnsafeImageError(
                ErrorCode.OVERSIZED_HEADER,
                f"The image needs more than {EXTRA_BYTES_LIMIT} bytes of metadata beyond "
                "its first MiB to be verified, which is more than is accepted.",
            )
        self._ranges.append(wanted)

    def _read_retained(self, offset: int, length: int) -> bytes:
        """ReadAt over the retained bytes; raises NeedMoreData for bytes yet to come."""
        end = offset + length
        if not self._finished and end > self._pos:
            raise NeedMoreData(offset, length)
        found = self._lookup(offset, end)
        if found is None:
            raise self._passed(offset, end)
        data, stable = found
        if not stable and not self._finished:
            # The tail and the current chunk move on; keep what a parser read so
            # that the final pass in finish() sees the same bytes.
            self._add_range(_Range(offset, length, bytearray(data)))
        return data

    def _lookup(self, offset: int, end: int) -> tuple[bytes, bool] | None:
        """Return bytes [offset, end) from what is held, and whether they stay held."""
        if end <= len(self._head):
            return bytes(self._head[offset:end]), True
        for wanted in self._ranges:
            if wanted.offset <= offset and end <= wanted.filled_to:
                return bytes(wanted.data[offset - wanted.offset : end - wanted.offset]), True
        tail_start = self._pos - len(self._tail)
        if tail_start <= offset and end <= self._pos:
            return bytes(self._tail[offset - tail_start : end - tail_start]), False
        chunk = self._chunk
        if chunk is not None and self._chunk_start <= offset and end <= self._pos:
            return chunk[offset - self._chunk_start : end - self._chunk_start].tobytes(), False
        return None

    @staticmethod
    def _passed(offset: int, end: int) -> UnsafeImageError:
        return UnsafeImageError(
            ErrorCode.UNSUPPORTED_LAYOUT,
            f"The image keeps metadata at bytes {offset} to {end}, which had already "
            "streamed past when it was located, so it cannot be verified during upload.",
        )
