"""Headers and bodies of file downloads (images, format copies, log exports)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool

# RFC 5987 attr-char minus the ones quote() leaves alone anyway (ALPHA DIGIT "-._~").
_ATTR_CHAR_EXTRA = "!#$&+^`|"


def _ascii_fallback(filename: str) -> str:
    """The name for clients that read only ``filename=``: accents stripped, anything else
    outside printable ASCII (and the quoting characters) replaced by ``_``."""
    decomposed = unicodedata.normalize("NFKD", filename)
    out = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        out.append(ch if " " <= ch <= "~" and ch not in '"\\%' else "_")
    return "".join(out) or "download"


def content_disposition(filename: str) -> str:
    """An RFC 6266 ``attachment`` value: a quoted ASCII fallback and the exact name as
    ``filename*=UTF-8''<percent-encoded>`` (RFC 5987), which clients prefer."""
    encoded = quote(filename, safe=_ATTR_CHAR_EXTRA, encoding="utf-8")
    return f"attachment; filename=\"{_ascii_fallback(filename)}\"; filename*=UTF-8''{encoded}"


async def primed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` with its first chunk already produced (in a worker thread).

    A streaming response sends its status line before it reads the body; an error in the
    first read (storage missing, database busy) would then cut the connection instead of
    answering a problem. Reading one chunk before the response starts turns such errors
    into a proper answer.
    """
    iterator = iter(chunks)
    first = await run_in_threadpool(next, iterator, None)

    def rest() -> Iterator[bytes]:
        if first is None:
            return
        yield first
        yield from iterator

    return rest()
