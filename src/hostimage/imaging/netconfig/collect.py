"""Which guest files the network reset reads, and reading them through either path (the
libguestfs appliance or debugfs in the sandbox) with the same rules: bounded sizes, regular
files only, no symlink followed — not even a symlinked parent directory."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from hostimage.imaging.netconfig.model import (
    MAX_CONFIG_BYTES,
    MAX_DIR_ENTRIES,
    NetworkChange,
    change,
)

# Kinds a reader reports: "file" (regular), "dir", "link" (symlink) or "other".
FILE, DIR, LINK = "file", "dir", "link"

IFUPDOWN, NETPLAN, KEYFILE, IFCFG, IFCFG_SUSE, NETWORKD = (
    "ifupdown",
    "netplan",
    "networkmanager",
    "ifcfg",
    "ifcfg-suse",
    "networkd",
)

# Names package managers and editors leave next to a config; no network tool reads them.
_BACKUP_SUFFIXES = (
    "~",
    ".bak",
    ".orig",
    ".rej",
    ".swp",
    ".tmp",
    ".old",
    ".rpmnew",
    ".rpmsave",
    ".dpkg-old",
    ".dpkg-dist",
    ".dpkg-new",
)


def _not_backup(name: str) -> bool:
    return not name.startswith(".") and not name.endswith(_BACKUP_SUFFIXES)


@dataclass(frozen=True)
class Source:
    """A directory of one family's config files, with the names that family reads."""

    family: str
    directory: str
    accept: Callable[[str], bool]


SOURCES = (
    Source(IFUPDOWN, "/etc/network/interfaces.d", _not_backup),
    Source(NETPLAN, "/etc/netplan", lambda n: n.endswith(".yaml") and _not_backup(n)),
    Source(
        KEYFILE,
        "/etc/NetworkManager/system-connections",
        # NetworkManager reads *.nmconnection and, for old profiles, names without a dot.
        lambda n: _not_backup(n) and (n.endswith(".nmconnection") or "." not in n),
    ),
    Source(
        IFCFG,
        "/etc/sysconfig/network-scripts",
        lambda n: _not_backup(n) and n.startswith(("ifcfg-", "route-", "route6-")),
    ),
    Source(
        IFCFG_SUSE,
        "/etc/sysconfig/network",
        lambda n: _not_backup(n) and (n.startswith(("ifcfg-", "ifroute-")) or n == "routes"),
    ),
    Source(
        NETWORKD,
        "/etc/systemd/network",
        lambda n: _not_backup(n) and n.endswith((".network", ".link", ".netdev")),
    ),
)

# Single files: (family, path). /etc/sysconfig/network is RHEL's global file when it is a
# file and SUSE's directory when it is one.
SINGLE_FILES = (
    (IFUPDOWN, "/etc/network/interfaces"),
    (IFCFG, "/etc/sysconfig/network"),
    (IFCFG_SUSE, "/etc/sysconfig/network/config"),
)

_SINGLE_PATHS = frozenset(path for _, path in SINGLE_FILES)

# Paths whose presence chooses the family of a static config when the image has none.
NETWORKD_ENABLED = "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
PROBES = (
    "/etc/netplan",
    "/etc/NetworkManager/system-connections",
    "/etc/systemd/network",
    NETWORKD_ENABLED,
    "/etc/sysconfig/network-scripts",
    "/etc/sysconfig/network",
    "/etc/network/interfaces",
)


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:depth]) for depth in range(1, len(parts))]


# Every directory ``collect`` may list (a reader can fetch them ahead, in one go).
DIRECTORIES = tuple(
    dict.fromkeys(
        [
            *(d for p in (*PROBES, *_SINGLE_PATHS) for d in _parents(p)),
            *(d for s in SOURCES for d in (*_parents(s.directory), s.directory)),
        ]
    )
)


class GuestReader(Protocol):
    """Read-only access to the guest file system, never following symlinks."""

    def stat(self, path: str) -> tuple[str, int] | None:
        """(kind, size) of ``path`` itself: kind ``file``, ``dir``, ``link`` or ``other``;
        None when it does not exist."""
        ...

    def names(self, directory: str) -> list[str]:
        """The names in ``directory`` (not . and ..)."""
        ...

    def read(self, files: list[tuple[str, int]]) -> list[bytes]:
        """The contents of regular files given as (path, size), in that order."""
        ...


@dataclass
class GuestConfigs:
    """The network config files read from a guest: per family, path → content."""

    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    skipped: list[NetworkChange] = field(default_factory=list)
    present: dict[str, str] = field(default_factory=dict)  # probe path → kind

    def add(self, family: str, path: str, data: bytes) -> None:
        """Record the content of one config file."""
        self.files.setdefault(family, {})[path] = data


class _Walk:
    def __init__(self, reader: GuestReader, configs: GuestConfigs) -> None:
        self.reader = reader
        self.configs = configs
        self.stats: dict[str, tuple[str, int] | None] = {"/": (DIR, 0)}
        self.reported: set[str] = set()
        self.wanted: list[tuple[str, str, int]] = []

    def stat(self, path: str) -> tuple[str, int] | None:
        if path not in self.stats:
            self.stats[path] = self.reader.stat(path)
        return self.stats[path]

    def plain(self, path: str, family: str) -> tuple[str, int] | None:
        """(kind, size) of ``path`` when every parent is a real directory; None otherwise (a
        parent that is a symlink is reported once; one that is a file means "not there")."""
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            parent = "/" + "/".join(parts[:depth])
            found = self.stat(parent)
            if found is not None and found[0] == DIR:
                continue
            if found is not None and found[0] == LINK and family:
                self.skip(parent, family, "a symbolic link (never followed)")
            return None
        return self.stat(path)

    def skip(self, path: str, family: str, reason: str) -> None:
        if path not in self.reported:
            self.reported.add(path)
            self.configs.skipped.append(change(path, family, "skipped", reason=reason))

    def take(self, family: str, path: str, found: tuple[str, int] | None) -> None:
        if found is None:
            return
        kind, size = found
        if kind == LINK:
            self.skip(path, family, "a symbolic link (never followed)")
        elif kind == FILE and size > MAX_CONFIG_BYTES:
            self.skip(path, family, f"larger than {MAX_CONFIG_BYTES} bytes")
        elif kind == FILE:
            self.wanted.append((family, path, size))

    def read(self) -> None:
        contents = self.reader.read([(path, size) for _, path, size in self.wanted])
        for (family, path, _), data in zip(self.wanted, contents, strict=True):
            self.configs.add(family, path, data)


def collect(reader: GuestReader) -> GuestConfigs:
    """Read every network config file the reset looks at, by the rules above."""
    configs = GuestConfigs()
    walk = _Walk(reader, configs)
    for probe in PROBES:
        found = walk.plain(probe, "")
        if found is not None:
            configs.present[probe] = found[0]
    for family, path in SINGLE_FILES:
        found = walk.plain(path, family)
        if found is not None and found[0] in (FILE, LINK):
            walk.take(family, path, found)
    for source in SOURCES:
        found = walk.plain(source.directory, source.family)
        if found is not None and found[0] == LINK:
            walk.skip(source.directory, source.family, "a symbolic link (never followed)")
        if found is None or found[0] != DIR:
            continue
        names = reader.names(source.directory)
        if len(names) > MAX_DIR_ENTRIES:
            walk.skip(source.directory, source.family, f"more than {MAX_DIR_ENTRIES} entries")
            continue
        for name in sorted(names):
            path = posixpath.join(source.directory, name)
            if source.accept(name) and path not in _SINGLE_PATHS:
                walk.take(source.family, path, walk.stat(path))
    walk.read()
    return configs
