"""Local work on fetched disk layers: join downloaded qcow2 layers into one file, and flatten a
local backing chain.

``hostimage.imaging.qemu_img`` refuses images with backing files, on purpose; these are the
only places that open such images, and only once every file of the chain is known to be
one of ours (in the fetch directory, checked before and after joining).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

from hostimage.compute.model import DiskNotReadable
from hostimage.imaging.limits import Limits, describe_exit, run_limited
from hostimage.imaging.qemu_img import QemuImgError, qemu_format

_QCOW2_MAGIC = b"QFI\xfb"
_INCOMPAT_DATA_FILE = 1 << 2


def check_layer_header(path: Path, what: str) -> None:
    """Refuse a downloaded layer that is not qcow2, is encrypted, or keeps its data in an
    external file: qemu-img would open that file, a path on this machine. (The full
    inspector refuses any backing file, so it cannot look at a middle layer.)"""
    with open(path, "rb") as handle:
        head = handle.read(80)
    if len(head) < 72 or head[:4] != _QCOW2_MAGIC:
        raise DiskNotReadable(f"{what} has a backing file but is not a qcow2 image.")
    (version,) = struct.unpack_from(">I", head, 4)
    (crypt,) = struct.unpack_from(">I", head, 32)
    if crypt:
        raise DiskNotReadable(f"{what} is an encrypted qcow2 image.")
    if version >= 3:
        (incompatible,) = struct.unpack_from(">Q", head, 72)
        if incompatible & _INCOMPAT_DATA_FILE:
            raise DiskNotReadable(f"{what} keeps its data in an external data file.")


def rebase_unsafe(layer: Path, parent: Path, parent_fmt: str, limits: Limits) -> None:
    """Point ``layer`` (qcow2) at ``parent`` by name only: the header is rewritten, no data
    is read or moved."""
    _qemu_img(
        [
            "rebase",
            "-u",
            "-f",
            "qcow2",
            "-b",
            str(parent.absolute()),
            "-F",
            qemu_format(parent_fmt),
            str(layer.absolute()),
        ],
        limits,
    )


def chain_files(top: Path, fmt: str, limits: Limits) -> list[dict[str, Any]]:
    """``qemu-img info --backing-chain`` of ``top``: one report per file, top first."""
    done = _qemu_img(
        [
            "info",
            "--backing-chain",
            "--output=json",
            "-U",
            "-f",
            qemu_format(fmt),
            str(top.absolute()),
        ],
        limits,
    )
    try:
        report = json.loads(done)
    except ValueError:
        raise QemuImgError("qemu-img info printed output that is not JSON.") from None
    return report if isinstance(report, list) else [report]


def check_chain_inside(top: Path, fmt: str, root: Path, limits: Limits) -> None:
    """Every file of ``top``'s chain lies inside ``root`` and none has an external data
    file; raises DiskNotReadable otherwise."""
    base = root.resolve()
    for entry in chain_files(top, fmt, limits):
        name = Path(str(entry.get("filename", "")))
        if not name.is_absolute() or not name.resolve().is_relative_to(base):
            raise DiskNotReadable("A fetched layer refers to a file outside the fetched chain.")
        if data_file(entry):
            raise DiskNotReadable("A fetched layer keeps its data in an external data file.")


def data_file(entry: dict[str, Any]) -> str | None:
    """The external data file one ``qemu-img info`` report names, if any."""
    found = ((entry.get("format-specific") or {}).get("data") or {}).get("data-file")
    return str(found) if found else None


def flatten(top: Path, fmt: str, dest: Path, limits: Limits) -> None:
    """Write the guest-visible content of ``top`` and its backing chain into ``dest``, a
    qcow2 file without backing file."""
    _qemu_img(
        [
            "convert",
            "-f",
            qemu_format(fmt),
            "-O",
            "qcow2",
            "-m",
            "8",
            "-W",
            str(top.absolute()),
            str(dest.absolute()),
        ],
        limits,
    )


def _qemu_img(args: list[str], limits: Limits) -> str:
    binary = shutil.which("qemu-img")
    if binary is None:
        raise QemuImgError("qemu-img is not installed (Debian package qemu-utils).")
    done = run_limited([binary, *args], limits)
    if done.timed_out:
        raise QemuImgError(f"qemu-img {args[0]} did not finish within {limits.timeout_seconds} s.")
    if done.returncode != 0:
        lines = [line for line in done.stderr_text.splitlines() if line.strip()]
        detail = lines[-1] if lines else describe_exit(done.returncode)
        raise QemuImgError(
            f"qemu-img {args[0]} failed ({describe_exit(done.returncode)}): {detail}",
            done.returncode,
            done.stderr_text,
        )
    return done.stdout_text
