"""Streaming image data with Rich progress bars: upload, and resumable download (Range).

A download is written to ``<file>.part`` and renamed when its SHA-256 matches the ETag the
server sends (``"sha256:<hex>"``); running the same command again after an interruption
continues from the bytes already there.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from hostimage.cli.client import Api
from hostimage.cli.errors import ApiError, CliError
from hostimage.cli.output import err

CHUNK = 1024 * 1024


def progress_bar() -> Progress:
    """Bytes done / total, rate and ETA on stderr (hidden when stderr is not a terminal)."""
    console = err()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def upload(api: Api, image_id: str, path: Path) -> dict[str, Any]:
    """Stream ``path`` into ``PUT /images/{id}/data``; return the active image."""
    total = path.stat().st_size
    with progress_bar() as progress:
        bar = progress.add_task(f"upload {path.name}", total=total)

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    progress.advance(bar, len(chunk))
                    yield chunk

        response = api.request(
            "PUT",
            f"/images/{image_id}/data",
            content=chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(total)},
        )
    result: dict[str, Any] = response.json()
    return result


def _expected(etag: str | None) -> str | None:
    """``"sha256:<hex>"`` → ``<hex>`` (None when the server sent no checksum)."""
    if not etag:
        return None
    value = etag.strip().removeprefix("W/").strip('"')
    return value.removeprefix("sha256:") if value.startswith("sha256:") else None


def _hash_existing(part: Path) -> tuple[Any, int]:
    digest = hashlib.sha256()
    done = 0
    with part.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
    return digest, done


def download(
    api: Api, image_id: str, target: Path, fmt: str | None, *, resume: bool = True
) -> tuple[int, str | None]:
    """Download to ``target`` through ``target.part``; return (bytes, sha256 hex)."""
    part = target.with_name(target.name + ".part")
    if not resume:
        part.unlink(missing_ok=True)
    digest, offset = _hash_existing(part) if part.exists() else (hashlib.sha256(), 0)
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    params = {"format": fmt}
    try:
        with api.stream("GET", f"/images/{image_id}/data", params=params, headers=headers) as r:
            if r.status_code == 200 and offset:  # the server sent everything again
                digest, offset = hashlib.sha256(), 0
                part.unlink(missing_ok=True)
            total = offset + int(r.headers.get("Content-Length") or 0)
            expected = _expected(r.headers.get("ETag"))
            with progress_bar() as progress, part.open("ab") as fh:
                bar = progress.add_task(f"download {target.name}", total=total, completed=offset)
                for chunk in r.iter_bytes(CHUNK):
                    fh.write(chunk)
                    digest.update(chunk)
                    progress.advance(bar, len(chunk))
    except ApiError as exc:
        if exc.status != 416 or not offset:
            raise
        # The part file already holds every byte; verify it against a fresh ETag.
        with api.stream(
            "GET", f"/images/{image_id}/data", params=params, headers={"Range": "bytes=0-0"}
        ) as r:
            expected = _expected(r.headers.get("ETag"))
            total = offset
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted; {part} keeps the bytes so far — run the same command to resume",
            exit_code=130,
        ) from None
    actual = digest.hexdigest()
    if expected and actual != expected:
        part.unlink(missing_ok=True)
        raise CliError(
            f"checksum mismatch (got sha256:{actual}, expected sha256:{expected}); "
            "the partial file was removed, download again"
        )
    os.replace(part, target)
    return total, actual


def to_stdout(api: Api, image_id: str, fmt: str | None) -> int:
    """Stream the data to standard output (no resume, no progress)."""
    written = 0
    with api.stream("GET", f"/images/{image_id}/data", params={"format": fmt}) as r:
        out = sys.stdout.buffer
        for chunk in r.iter_bytes(CHUNK):
            out.write(chunk)
            written += len(chunk)
        out.flush()
    return written
