"""Named connection profiles kept in the user's config directory.

The file is ``$XDG_CONFIG_HOME/hostimage/profiles.json`` (``~/.config/hostimage/`` by
default), readable by its owner only (directory 0700, file 0600) because it holds tokens.
``HOSTIMAGE_PROFILE`` picks a profile, ``HOSTIMAGE_URL`` and ``HOSTIMAGE_TOKEN`` override the
stored URL and token (for scripts that never write a file).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_PROFILE = "default"


class ConfigError(Exception):
    """The configuration cannot be used (unreadable file, unknown profile, no login)."""


@dataclass
class Profile:
    """What one login remembers: where, who, and the token for the current project."""

    url: str = ""
    domain: str = "Default"
    username: str = ""
    token: str | None = None
    expires_at: str | None = None
    user_id: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    highest_view: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Build a profile from stored JSON, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Config:
    """All profiles and the name of the one used when none is asked for."""

    current: str = DEFAULT_PROFILE
    profiles: dict[str, Profile] = field(default_factory=dict)


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/hostimage`` or ``~/.config/hostimage``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hostimage"


def config_path() -> Path:
    """The profiles file."""
    return config_dir() / "profiles.json"


def load() -> Config:
    """Read the profiles file (an empty configuration when there is none)."""
    path = config_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    profiles = {
        str(name): Profile.from_dict(data)
        for name, data in (raw.get("profiles") or {}).items()
        if isinstance(data, dict)
    }
    return Config(current=str(raw.get("current") or DEFAULT_PROFILE), profiles=profiles)


def save(config: Config) -> Path:
    """Write the profiles file atomically with mode 0600 (directory 0700)."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    data = {
        "current": config.current,
        "profiles": {name: asdict(p) for name, p in sorted(config.profiles.items())},
    }
    fd, tmp = tempfile.mkstemp(prefix=".profiles-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, config_path())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return config_path()


def profile_name(requested: str | None, config: Config) -> str:
    """The profile to use: ``--profile``, else ``HOSTIMAGE_PROFILE``, else the current one."""
    return requested or os.environ.get("HOSTIMAGE_PROFILE") or config.current


@dataclass(frozen=True)
class Connection:
    """Where to send requests and with which token, after the environment overrides."""

    profile: str
    url: str
    token: str | None
    token_from_env: bool
    stored: Profile | None


def normalise_url(url: str) -> str:
    """``host:8080``, ``http://host:8080/`` or ``…/api/v1`` → ``http://host:8080``."""
    url = url.strip().rstrip("/")
    if url and "://" not in url:
        url = f"http://{url}"
    if url.endswith("/api/v1"):
        url = url[: -len("/api/v1")]
    return url


def connection(requested: str | None) -> Connection:
    """Resolve the profile and apply ``HOSTIMAGE_URL`` / ``HOSTIMAGE_TOKEN``."""
    config = load()
    name = profile_name(requested, config)
    stored = config.profiles.get(name)
    if requested and stored is None and not os.environ.get("HOSTIMAGE_URL"):
        raise ConfigError(f"no profile named {name!r}; log in with 'hostimage login --profile'")
    env_url = os.environ.get("HOSTIMAGE_URL")
    env_token = os.environ.get("HOSTIMAGE_TOKEN")
    url = normalise_url(env_url or (stored.url if stored else ""))
    token = env_token or (stored.token if stored else None)
    return Connection(
        profile=name, url=url, token=token, token_from_env=bool(env_token), stored=stored
    )
