"""Data-plane fixtures: real disks built at test time, a world, a worker run in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.conftest import World, app_env, client, make_worker, world  # noqa: F401
from tests.imaging.diskfactory import (
    TemplateDisk,
    build_data_disk,
    build_template_disk,
    require_tools,
)


@dataclass(frozen=True)
class TemplateVm:
    system: TemplateDisk
    data_ext4: Path
    data_random: Path


@pytest.fixture(scope="session")
def template_vm(tmp_path_factory: pytest.TempPathFactory) -> TemplateVm:
    """A template VM's disks: a partitioned Linux system disk and two data disks."""
    require_tools("qemu-img", "mkfs.ext4", "sfdisk", "debugfs")
    work = tmp_path_factory.mktemp("template-vm")
    system = build_template_disk(work, "system", fmt="raw")
    return TemplateVm(
        system=system,
        data_ext4=build_data_disk(work / "data1.raw", "ext4", 16 * 1024 * 1024),
        data_random=build_data_disk(work / "data2.raw", "random", 8 * 1024 * 1024),
    )
