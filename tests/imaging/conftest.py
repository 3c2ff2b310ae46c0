"""Fixtures that build real disk images with qemu-img at test time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from inspector_helpers import QemuImg, run_qemu_img


@pytest.fixture
def make_image(tmp_path: Path) -> QemuImg:
    """Return ``make(name, fmt, size, *options)`` that runs ``qemu-img create``."""

    def make(name: str, fmt: str, size: str = "10M", *options: str) -> Path:
        path = tmp_path / name
        run_qemu_img("create", "-q", "-f", fmt, *options, path, size)
        return path

    return make


@pytest.fixture
def chdir_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run the test inside ``tmp_path`` so qemu-img writes relative names there."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
