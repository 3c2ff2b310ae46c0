"""Random-access view over an image that the format parsers read from.

The same parser code runs on a seekable file and on an upload that is still
streaming. In the streaming case the total size is unknown until the end and only
some byte ranges are retained, so a read may raise :class:`NeedMoreData`; the
streaming driver catches it and retries once the data has arrived. Parsers must
therefore be pure functions of the bytes they read, and should read metadata that
lies further into the file before they consult :attr:`Source.size`.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import TruncatedError

#: ``read_at(offset, length)`` returns up to ``length`` bytes starting at ``offset``;
#: it returns fewer only when the end of the image is reached.
ReadAt = Callable[[int, int], bytes]

KIB = 1024
MIB = 1024 * KIB

#: Bytes every format probe may look at without further justification. Covers the
#: ISO 9660 volume descriptor at 0x8001 and the VHDX file identifier.
PROBE_BYTES = 64 * KIB

#: Metadata the parsers are willing to read from the start of the file. The
#: streaming inspector keeps exactly this much of the head, so both modes agree.
HEAD_WINDOW = 1 * MIB


class NeedMoreData(Exception):
    """Internal signal: a streamed image has not yet delivered the bytes a parser needs.

    ``offset`` is ``None`` when the parser needs the total size of the image.
    This never escapes the public API.
    """

    def __init__(self, offset: int | None, length: int) -> None:
        super().__init__(offset, length)
        self.offset = offset
        self.length = length


class Source:
    """Bounded reads over an image whose size may not be known yet."""

    def __init__(self, read_at: ReadAt, size: int | None) -> None:
        if size is not None and size < 0:
            raise ValueError("size must not be negative")
        self._read_at = read_at
        self._size = size

    @property
    def size(self) -> int:
        """Total length of the image in bytes; raises NeedMoreData while still streaming."""
        if self._size is None:
            raise NeedMoreData(None, 0)
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        """Return ``length`` bytes at ``offset``, or fewer only if the image ends first."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        if self._size is not None:
            length = max(0, min(length, self._size - offset))
        parts: list[bytes] = []
        got = 0
        while got < length:
            data = self._read_at(offset + got, length - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)[:length]

    def read_exact(self, offset: int, length: int, what: str) -> bytes:
        """Return exactly ``length`` bytes at ``offset`` or raise TruncatedError naming ``what``."""
        data = self.read(offset, length)
        if len(data) < length:
            raise TruncatedError(
                f"The image ends before its {what} is complete: {length} bytes are needed "
                f"at offset {offset} but only {len(data)} are present."
            )
        return data
