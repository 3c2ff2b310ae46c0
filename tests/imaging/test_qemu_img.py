"""The qemu-img wrapper: JSON parsing, conversions to every format, progress and limits."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from diskfactory import MIB, payload_bytes

from hostimage.imaging import qemu_img
from hostimage.imaging.limits import GIB, Limits
from hostimage.imaging.qemu_img import QemuImgError

# Under CI a missing qemu-img fails the tests instead of skipping them.
pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None and not os.environ.get("CI"), reason="qemu-img missing"
)

SIZE = 16 * MIB
FORMATS = ["qcow2", "raw", "vmdk", "vhd", "vhdx"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16 MiB raw disk: known bytes at the start, a hole, more known bytes at 9 MiB."""
    path = tmp_path_factory.mktemp("qemu-img") / "source.raw"
    with path.open("wb") as handle:
        handle.truncate(SIZE)
        handle.write(payload_bytes(2 * MIB))
        handle.seek(9 * MIB)
        handle.write(b"hostimage" * 100_000)
    return path


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory that alone makes up PATH; tests drop a fake ``qemu-img`` into it."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


def fake_qemu_img(directory: Path, body: str) -> None:
    script = directory / "qemu-img"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_info_reports_raw_image(source: Path) -> None:
    info = qemu_img.info(source, "raw")
    assert info.format == "raw"
    assert info.virtual_size == SIZE
    assert info.backing_filename is None
    assert info.actual_size is not None and info.actual_size < SIZE  # the hole is sparse


def test_info_reports_qcow2_details(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.qcow2"
    qemu_img.convert(source, "raw", dst, "qcow2")
    info = qemu_img.info(dst, "qcow2")
    assert (info.format, info.virtual_size, info.cluster_size) == ("qcow2", SIZE, 65536)
    assert info.format_specific["type"] == "qcow2"
    assert info.format_specific["data"]["compat"] == "1.1"


@pytest.mark.parametrize("fmt", FORMATS)
def test_convert_round_trip_keeps_content(source: Path, tmp_path: Path, fmt: str) -> None:
    converted = tmp_path / f"disk.{fmt}"
    qemu_img.convert(source, "raw", converted, fmt)
    info = qemu_img.info(converted, fmt)
    assert info.format == fmt
    assert info.virtual_size == SIZE  # vhd keeps the exact size thanks to force_size
    assert qemu_img.compare(source, "raw", converted, fmt)
    back = tmp_path / "back.raw"
    qemu_img.convert(converted, fmt, back, "raw")
    assert back.read_bytes() == source.read_bytes()


def test_vmdk_output_is_stream_optimized(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.vmdk"
    qemu_img.convert(source, "raw", dst, "vmdk")
    data = qemu_img.info(dst, "vmdk").format_specific["data"]
    assert data["create-type"] == "streamOptimized"


def test_vhd_output_is_fixed(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.vhd"
    qemu_img.convert(source, "raw", dst, "vhd")
    # A fixed VHD is the raw data followed by a 512-byte footer ending in "conectix"-typed data.
    assert dst.stat().st_size == SIZE + 512
    with dst.open("rb") as handle:
        handle.seek(SIZE)
        assert handle.read(8) == b"conectix"


def test_compressed_qcow2_uses_zstd(source: Path, tmp_path: Path) -> None:
    plain, packed = tmp_path / "plain.qcow2", tmp_path / "packed.qcow2"
    qemu_img.convert(source, "raw", plain, "qcow2")
    qemu_img.convert(source, "raw", packed, "qcow2", compress=True)
    info = qemu_img.info(packed, "qcow2")
    assert info.format_specific["data"]["compression-type"] == "zstd"
    assert packed.stat().st_size < plain.stat().st_size
    assert qemu_img.compare(source, "raw", packed, "qcow2")
    assert qemu_img.check(packed, "qcow2").clean


def test_compression_is_refused_for_uncompressible_formats(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Compressed output"):
        qemu_img.convert(source, "raw", tmp_path / "x.raw", "raw", compress=True)


def test_options_override_defaults_and_unsafe_options_are_refused(
    source: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "zlib.qcow2"
    qemu_img.convert(
        source, "raw", dst, "qcow2", compress=True, options={"compression_type": "zlib"}
    )
    assert qemu_img.info(dst, "qcow2").format_specific["data"]["compression-type"] == "zlib"
    for key in ("backing_file", "data_file", "bad key"):
        with pytest.raises(ValueError, match="not allowed"):
            qemu_img.convert(source, "raw", tmp_path / "y.qcow2", "qcow2", options={key: "/x"})


def test_progress_is_reported_in_increasing_steps(source: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    qemu_img.convert(
        source, "raw", tmp_path / "p.qcow2", "qcow2", compress=True, progress=seen.append
    )
    assert len(seen) >= 3
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[0] < 50 and seen[-1] == 100.0


def test_check_reports_clean_image_and_unsupported_raw(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c.qcow2"
    qemu_img.convert(source, "raw", dst, "qcow2")
    result = qemu_img.check(dst, "qcow2")
    assert result.supported and result.clean and result.image_end_offset
    assert qemu_img.check(source, "raw") == qemu_img.CheckResult(supported=False)


def test_compare_detects_a_changed_byte(source: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed.raw"
    shutil.copyfile(source, changed)
    with changed.open("r+b") as handle:
        handle.seek(12 * MIB)
        handle.write(b"\x01")
    assert not qemu_img.compare(source, "raw", changed, "raw")


def test_create_makes_an_empty_image(tmp_path: Path) -> None:
    path = tmp_path / "blank.qcow2"
    qemu_img.create(path, "qcow2", 64 * MIB)
    info = qemu_img.info(path, "qcow2")
    assert (info.format, info.virtual_size) == ("qcow2", 64 * MIB)


def test_info_refuses_a_backing_file(source: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(source), "-F", "raw", str(overlay)],
        check=True,
    )
    with pytest.raises(QemuImgError, match="backing file"):
        qemu_img.info(overlay, "qcow2")
    # Every other entry point refuses it too, before qemu-img could read the backing file.
    with pytest.raises(QemuImgError, match="backing file"):
        qemu_img.convert(overlay, "qcow2", tmp_path / "out.raw", "raw")
    with pytest.raises(QemuImgError, match="backing file"):
        qemu_img.compare(source, "raw", overlay, "qcow2")
    with pytest.raises(QemuImgError, match="backing file"):
        qemu_img.check(overlay, "qcow2")
    assert not (tmp_path / "out.raw").exists()


def test_declared_format_is_enforced(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "real.qcow2"
    qemu_img.convert(source, "raw", dst, "qcow2")
    with pytest.raises(QemuImgError) as caught:
        qemu_img.info(dst, "vmdk")
    assert caught.value.returncode == 1 and caught.value.stderr
    # Read as raw, a qcow2 file is just bytes: no probing ever happens.
    assert qemu_img.info(dst, "raw").format == "raw"
    with pytest.raises(ValueError, match="Unsupported disk format"):
        qemu_img.info(dst, "iso")


def test_protocol_looking_names_are_plain_files(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(source, tmp_path / "nbd:localhost:10809")
    assert qemu_img.info("nbd:localhost:10809", "raw").virtual_size == SIZE


def test_tiny_address_space_limit_makes_qemu_img_fail(source: Path) -> None:
    with pytest.raises(QemuImgError) as caught:
        qemu_img.info(source, "raw", limits=Limits(address_space_bytes=16 * MIB))
    assert caught.value.returncode != 0


def test_limits_reach_the_child(
    fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "limits.txt"
    monkeypatch.setenv("LIMITS_OUT", str(out))
    fake_qemu_img(
        fake_bin,
        '/bin/cat /proc/self/limits > "$LIMITS_OUT"\n'
        'echo \'{"virtual-size": 512, "format": "raw", "filename": "x"}\'',
    )
    qemu_img.info(tmp_path / "x", "raw", limits=Limits(cpu_seconds=77, address_space_bytes=3 * GIB))
    limits = {line[:26].strip(): line[26:].split() for line in out.read_text().splitlines()}
    assert limits["Max cpu time"][:2] == ["77", "82"]
    assert limits["Max address space"][:2] == [str(3 * GIB)] * 2


def test_cpu_limit_kills_the_child(fake_bin: Path, tmp_path: Path) -> None:
    fake_qemu_img(fake_bin, "while :; do :; done")
    with pytest.raises(QemuImgError, match="CPU time limit"):
        qemu_img.info(tmp_path / "x", "raw", limits=Limits(cpu_seconds=1, timeout_seconds=60))


def test_timeout_kills_the_child(fake_bin: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    fake_qemu_img(fake_bin, f"echo $$ > {pid_file}\nexec /bin/sleep 60")
    started = time.monotonic()
    with pytest.raises(QemuImgError, match=r"did not finish within 0\.5 seconds") as caught:
        qemu_img.convert(tmp_path / "a", "raw", tmp_path / "b", "qcow2", timeout=0.5)
    assert time.monotonic() - started < 10
    assert caught.value.returncode is None
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_progress_callback_that_raises_stops_qemu_img(fake_bin: Path, tmp_path: Path) -> None:
    """A run whose task was taken away stops at its next progress step, and its qemu-img
    does not go on writing."""
    pid_file = tmp_path / "pid"
    fake_qemu_img(
        fake_bin,
        'case "$1" in\n'
        'info) echo \'{"virtual-size": 512, "format": "raw", "filename": "x"}\' ;;\n'
        f"convert) echo $$ > {pid_file}; printf '    (10.00/100%%)\\r'; exec /bin/sleep 60 ;;\n"
        "esac",
    )

    class Stop(Exception):
        pass

    def stop(_pct: float) -> None:
        raise Stop

    started = time.monotonic()
    with pytest.raises(Stop):
        qemu_img.convert(tmp_path / "a", "raw", tmp_path / "b", "qcow2", progress=stop)
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_missing_qemu_img_is_a_clear_error(fake_bin: Path, tmp_path: Path) -> None:
    with pytest.raises(QemuImgError, match="not installed"):
        qemu_img.info(tmp_path / "x", "raw")
