"""The one reader of the environment: ``HOSTIMAGE_*`` variables and an optional TOML file."""

from __future__ import annotations

import os
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _toml_defaults() -> dict[str, Any]:
    path = os.environ.get("HOSTIMAGE_CONFIG")
    if not path:
        return {}
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    section = data.get("hostimage", data)
    return dict(section) if isinstance(section, dict) else {}


class Settings(BaseSettings):
    """Runtime configuration. Environment wins over the TOML file named by HOSTIMAGE_CONFIG."""

    model_config = SettingsConfigDict(env_prefix="HOSTIMAGE_", extra="ignore")

    data_dir: Path = Field(default=Path("./var"))
    database_url: str | None = None
    storage_url: str | None = None
    admin_password: str | None = None
    token_ttl_seconds: int = 12 * 3600
    # Use cases one API process runs at once (the others wait their turn, in order). The
    # work is mostly Python holding the GIL: more threads only take turns more often.
    api_threads: int = Field(default=4, ge=1)
    sql_echo: bool = False
    disks_dir: Path | None = None
    work_dir: Path | None = None
    save_parallelism: int = 3
    qemu_timeout_seconds: int = 3600
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    # Password hashing runs on a pool of its own, so a burst of logins never takes the
    # threads every other request needs.
    password_hash_threads: int = Field(default=2, ge=1)
    # Tasks: how often an idempotent task is tried before it fails for good, and the first
    # retry delay (doubled after each further failure).
    task_max_attempts: int = Field(default=5, ge=1)
    task_retry_base_seconds: float = Field(default=5.0, ge=0)
    # Garbage collection of stored objects no row references: how old such an object must
    # be before it goes, and how often the workers look.
    gc_grace_hours: float = Field(default=24.0, ge=0)
    gc_interval_seconds: int = Field(default=3600, ge=1)
    # Compute hosts: how often each host's domains are read again.
    host_sync_seconds: int = Field(default=60, ge=5)
    # …and how long a VM's graceful shutdown may take before it is forced off.
    host_shutdown_seconds: int = Field(default=60, ge=0)
    # Fault injection for the crash tests only: the process kills itself at this step
    # (hostimage.crashpoints).
    crash_at: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hostimage.db').resolve()}"

    @property
    def effective_disks_dir(self) -> Path:
        """Where VM disk files live (shared by API and workers in a scale-out setup)."""
        return (self.disks_dir or self.data_dir / "disks").resolve()

    @property
    def effective_work_dir(self) -> Path:
        """Scratch space for conversions; must hold a few disks' worth of data."""
        return (self.work_dir or self.data_dir / "work").resolve()

    @cached_property
    def effective_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return f"file://{(self.data_dir / 'objects').resolve()}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from TOML defaults, then the environment, then explicit overrides."""
    base = _toml_defaults()
    env = Settings()
    merged = {**base, **env.model_dump(exclude_unset=True), **overrides}
    return Settings.model_validate(merged) if merged else env
