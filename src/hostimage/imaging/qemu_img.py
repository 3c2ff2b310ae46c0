"""A safe wrapper around ``qemu-img``: argv lists, explicit input formats, limits, JSON output.

Every call names the input format (``-f``) so qemu-img never probes content, passes absolute
paths so a file name is never taken for a protocol (``nbd:…``, ``json:…``), runs under CPU,
address-space and wall-clock limits, and parses ``--output=json`` into frozen dataclasses.
Format names are ours (``qcow2 raw vmdk vhd vhdx``) and mapped to qemu's (``vhd`` → ``vpc``).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hostimage.errors import HostImageError
from hostimage.imaging.limits import Completed, Limits, describe_exit, run_limited

DEFAULT_LIMITS = Limits()

_QEMU_FORMATS: dict[str, str] = {
    "qcow2": "qcow2",
    "raw": "raw",
    "vmdk": "vmdk",
    "vhd": "vpc",
    "vhdx": "vhdx",
}
_OUR_FORMATS = {qemu: ours for ours, qemu in _QEMU_FORMATS.items()}

# Output options that would make qemu-img read or write files other than the ones named.
_FORBIDDEN_OPTIONS = frozenset({"backing_file", "backing_fmt", "data_file", "data_file_raw"})
_OPTION_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")

# qemu-img check: 0 clean, 2 corruptions, 3 leaks only, 63 format cannot be checked.
_CHECK_UNSUPPORTED = 63


class QemuImgError(HostImageError):
    """qemu-img failed, timed out, hit a limit, or reported something we refuse."""

    code = "qemu_img_failed"
    title = "Disk image tool failed"

    def __init__(self, message: str, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class ImageInfo:
    """What ``qemu-img info`` reports about one image (format in our vocabulary)."""

    format: str
    virtual_size: int
    actual_size: int | None
    cluster_size: int | None
    backing_filename: str | None
    format_specific: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """What ``qemu-img check`` found; ``supported`` is false for formats without metadata."""

    supported: bool
    corruptions: int = 0
    leaks: int = 0
    check_errors: int = 0
    image_end_offset: int | None = None

    @property
    def clean(self) -> bool:
        """True when the image has no corruption, leak or check error."""
        return self.corruptions == 0 and self.leaks == 0 and self.check_errors == 0


def qemu_format(fmt: str) -> str:
    """Map one of our format names to qemu's driver name; raise ``ValueError`` if unknown."""
    try:
        return _QEMU_FORMATS[fmt]
    except KeyError:
        raise ValueError(f"Unsupported disk format {fmt!r}.") from None


def info(
    path: Path | str, fmt: str, *, limits: Limits = DEFAULT_LIMITS, timeout: float | None = None
) -> ImageInfo:
    """Return qemu-img's view of ``path`` opened as ``fmt``.

    Every function here takes ``limits`` for the child and ``timeout`` (seconds of wall-clock
    time) which, when given, overrides ``limits.timeout_seconds``.

    Raises ``QemuImgError`` if qemu-img fails or if the image references another file
    (a backing file or an external data file), because such an image is never accepted.
    """
    done = _run(["info", "--output=json", "-f", qemu_format(fmt), _abs(path)], limits, timeout)
    report = _json(done)
    if not isinstance(report, dict) or not isinstance(report.get("virtual-size"), int):
        raise QemuImgError("qemu-img info printed no virtual size.", done.returncode, "")
    specific = report.get("format-specific") or {}
    backing = report.get("backing-filename") or report.get("full-backing-filename")
    if backing:
        raise QemuImgError(
            f"The image refers to a backing file ({backing}); images must be self-contained.",
            done.returncode,
            "",
        )
    data_file = (specific.get("data") or {}).get("data-file")
    if data_file:
        raise QemuImgError(
            f"The image keeps its data in an external file ({data_file}); refused.",
            done.returncode,
            "",
        )
    qemu_fmt = str(report.get("format", ""))
    return ImageInfo(
        format=_OUR_FORMATS.get(qemu_fmt, qemu_fmt),
        virtual_size=int(report["virtual-size"]),
        actual_size=_opt_int(report.get("actual-size")),
        cluster_size=_opt_int(report.get("cluster-size")),
        backing_filename=None,
        format_specific=dict(specific),
    )


def create(
    path: Path | str,
    fmt: str,
    size_bytes: int,
    *,
    options: Mapping[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    timeout: float | None = None,
) -> None:
    """Create an empty image of ``size_bytes`` virtual bytes at ``path`` (overwriting it)."""
    if size_bytes < 0:
        raise ValueError("An image size cannot be negative.")
    argv = ["create", "-q", "-f", qemu_format(fmt)]
    argv += _option_args(dict(options or {}))
    _run([*argv, _abs(path), str(size_bytes)], limits, timeout)


def measure(
    src: Path | str,
    src_fmt: str,
    dst_fmt: str,
    *,
    options: Mapping[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    timeout: float | None = None,
) -> int:
    """How many bytes converting ``src`` into ``dst_fmt`` may write, at most (``qemu-img
    measure``'s ``required``; a compressed output needs less). Raises ``QemuImgError`` like
    ``info``, whose check runs first.

    qemu-img measures qcow2 and raw outputs only: a fixed VHD takes the virtual size and its
    footer, and a VMDK is bounded by what the same data takes as qcow2.
    """
    src_info = info(src, src_fmt, limits=limits, timeout=timeout)
    if dst_fmt == "vhd":
        return src_info.virtual_size + 2 * 1024 * 1024
    target = "qcow2" if dst_fmt == "vmdk" else dst_fmt
    argv = ["measure", "--output=json", "-f", qemu_format(src_fmt), "-O", qemu_format(target)]
    if target == dst_fmt:
        argv += _option_args(dict(options or {}))
    report = _json(_run([*argv, _abs(src)], limits, timeout))
    if not isinstance(report, dict) or not isinstance(report.get("required"), int):
        raise QemuImgError("qemu-img measure printed no required size.")
    return int(report["required"])


PARALLEL_WRITE_FORMATS = frozenset({"qcow2", "raw"})


def convert(
    src: Path | str,
    src_fmt: str,
    dst: Path | str,
    dst_fmt: str,
    *,
    compress: bool = False,
    options: Mapping[str, str] | None = None,
    progress: Callable[[float], None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    timeout: float | None = None,
) -> None:
    """Convert ``src`` (read as ``src_fmt``) into a new image ``dst`` in ``dst_fmt``.

    qcow2 output uses zstd when ``compress`` is set; vmdk output is streamOptimized; vhd
    output is a fixed VHD with the exact requested size. ``options`` are added to (and
    override) those defaults. ``progress`` is called in this thread with non-decreasing
    percentages and finally with 100.0 on success. Raises ``QemuImgError`` for a source that
    refers to other files (see ``info``), on failure, on timeout, or when a limit kills
    qemu-img; ``dst`` may then be partially written.
    """
    out_fmt = qemu_format(dst_fmt)
    opts: dict[str, str] = {}
    if dst_fmt == "vmdk":
        opts["subformat"] = "streamOptimized"
    elif dst_fmt == "vhd":
        opts.update(subformat="fixed", force_size="on")
    if compress:
        if dst_fmt not in ("qcow2", "vmdk"):
            raise ValueError(f"Compressed output is not available for {dst_fmt}.")
        if dst_fmt == "qcow2":
            opts["compression_type"] = "zstd"
    opts.update(options or {})
    argv = ["convert", "-p", "-f", qemu_format(src_fmt), "-O", out_fmt]
    if compress:
        argv.append("-c")
    if dst_fmt in PARALLEL_WRITE_FORMATS:
        # Several coroutines with out-of-order writes: about twice as fast for compressed
        # qcow2 here. Stream-optimized VMDK and fixed VHD must be written in order.
        argv += ["-m", "8", "-W"]
    argv += _option_args(opts)
    argv += [_abs(src), _abs(dst)]
    # qemu-img would silently read a backing file of the source: refuse such sources first.
    info(src, src_fmt, limits=limits, timeout=timeout)

    last = -1.0
    pending = b""

    def on_stdout(chunk: bytes) -> None:
        nonlocal last, pending
        pending += chunk
        *complete, pending = pending.split(b"\r")
        for line in complete:
            match = _PROGRESS.search(line)
            if match is None:
                continue
            pct = min(100.0, float(match.group(1)))
            if pct > last:
                last = pct
                if progress is not None:
                    progress(pct)

    _run(argv, limits, timeout, on_stdout=on_stdout)
    if progress is not None and last < 100.0:
        progress(100.0)


def check(
    path: Path | str, fmt: str, *, limits: Limits = DEFAULT_LIMITS, timeout: float | None = None
) -> CheckResult:
    """Check the image's metadata consistency without repairing anything.

    Returns the counts qemu-img found (corruptions do not raise); a format without checkable
    metadata (raw) gives ``supported=False``. Raises ``QemuImgError`` for an image that
    refers to other files (see ``info``) or if the check itself fails.
    """
    info(path, fmt, limits=limits, timeout=timeout)
    argv = ["check", "--output=json", "-f", qemu_format(fmt), _abs(path)]
    done = _run(argv, limits, timeout, ok_codes=(0, 2, 3, _CHECK_UNSUPPORTED))
    if done.returncode == _CHECK_UNSUPPORTED:
        return CheckResult(supported=False)
    report = _json(done)
    if not isinstance(report, dict):
        raise QemuImgError("qemu-img check printed no report.", done.returncode, done.stderr_text)
    return CheckResult(
        supported=True,
        corruptions=int(report.get("corruptions", 0)),
        leaks=int(report.get("leaks", 0)),
        check_errors=int(report.get("check-errors", 0)),
        image_end_offset=_opt_int(report.get("image-end-offset")),
    )


def compare(
    a: Path | str,
    a_fmt: str,
    b: Path | str,
    b_fmt: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    timeout: float | None = None,
) -> bool:
    """Return True if both images present the same guest-visible content, else False.

    Raises ``QemuImgError`` for an image that refers to other files (see ``info``) or when
    the comparison itself fails (exit status other than 0 or 1).
    """
    info(a, a_fmt, limits=limits, timeout=timeout)
    info(b, b_fmt, limits=limits, timeout=timeout)
    argv = ["compare", "-q", "-f", qemu_format(a_fmt), "-F", qemu_format(b_fmt), _abs(a), _abs(b)]
    done = _run(argv, limits, timeout, ok_codes=(0, 1))
    return done.returncode == 0


def _run(
    args: list[str],
    limits: Limits,
    timeout: float | None,
    *,
    ok_codes: tuple[int, ...] = (0,),
    on_stdout: Callable[[bytes], None] | None = None,
) -> Completed:
    binary = shutil.which("qemu-img")
    if binary is None:
        raise QemuImgError("qemu-img is not installed (Debian package qemu-utils).")
    if timeout is not None:
        limits = replace(limits, timeout_seconds=timeout)
    done = run_limited([binary, *args], limits, on_stdout=on_stdout)
    if done.timed_out:
        raise QemuImgError(
            f"qemu-img {args[0]} did not finish within {limits.timeout_seconds} seconds.",
            None,
            done.stderr_text,
        )
    if done.returncode not in ok_codes:
        detail = _last_line(done.stderr_text) or describe_exit(done.returncode)
        raise QemuImgError(
            f"qemu-img {args[0]} failed ({describe_exit(done.returncode)}): {detail}",
            done.returncode,
            done.stderr_text,
        )
    return done


def _option_args(options: dict[str, str]) -> list[str]:
    if not options:
        return []
    parts = []
    for key, value in options.items():
        if not _OPTION_KEY.match(key) or key in _FORBIDDEN_OPTIONS:
            raise ValueError(f"Image option {key!r} is not allowed.")
        # qemu's option syntax escapes a comma inside a value by doubling it.
        parts.append(f"{key}={str(value).replace(',', ',,')}")
    return ["-o", ",".join(parts)]


def _json(done: Completed) -> Any:
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise QemuImgError(
            "qemu-img printed output that is not JSON.", done.returncode, done.stderr_text
        ) from None


def _abs(path: Path | str) -> str:
    return str(Path(path).absolute())


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
