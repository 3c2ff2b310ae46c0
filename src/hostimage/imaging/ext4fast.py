"""Identity cleaning without an appliance, for the common case: an ext2/3/4 root file system
with a clean journal on a raw disk image.

e2fsprogs' ``debugfs`` edits the file system directly in the image file (``?offset=`` reaches
the partition), which takes well under a second where a libguestfs appliance launch takes
tens of seconds without KVM. Anything out of the ordinary — no partition table we can read,
another file system, a journal that needs recovery, a top directory that is a symlink, a name
with control characters — returns None and the caller uses libguestfs. After the
edit, ``e2fsck -fn`` must find the file system consistent.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hostimage.imaging.guestfish import GuestfsError
from hostimage.imaging.guestfs import CleanReport
from hostimage.imaging.limits import Limits, run_limited

SECTOR = 512
EXT_MAGIC = 0xEF53
# Superblock s_feature_incompat bits that mean "do not edit offline".
NEEDS_RECOVERY, JOURNAL_DEV = 0x4, 0x8
# debugfs takes "…" with "" for a quote; control characters and backslashes we leave alone.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\\]")
# One line of ``ls -p``: /inode/mode/uid/gid/name/size/
_LS_LINE = re.compile(r"^/(\d+)/([0-7]+)/(\d+)/(\d+)/([^/]*)/(\d*)/$")
_NIC_BINDING = re.compile(rb"^\s*(?:HWADDR|MACADDR|UUID)\s*=")
_LIMITS = Limits(cpu_seconds=120, address_space_bytes=1 << 30, timeout_seconds=120.0)

# Directories emptied recursively (kept themselves), and directories whose files only go.
EMPTIED_TREES = ("/var/lib/cloud", "/tmp", "/var/tmp")
LOG_TREE = "/var/log"
NETWORK_SCRIPT_DIRS = ("/etc/sysconfig/network-scripts", "/etc/sysconfig/network")


class NotApplicable(Exception):
    """The fast path does not handle this image; use libguestfs."""


@dataclass(frozen=True)
class Entry:
    name: str
    mode: int
    uid: int
    gid: int

    @property
    def is_dir(self) -> bool:
        return self.mode & 0o170000 == 0o040000

    @property
    def is_regular(self) -> bool:
        return self.mode & 0o170000 == 0o100000


def q(path: str) -> str:
    """``path`` quoted for a debugfs command line."""
    return '"' + path.replace('"', '""') + '"'


class _Fs:
    """One ext file system inside a raw image, reached with debugfs at a byte offset."""

    def __init__(self, image: Path, offset: int) -> None:
        self.spec = f"{image}?offset={offset}" if offset else str(image)
        self.debugfs = _tool("debugfs")

    def request(self, command: str) -> bytes:
        done = run_limited([self.debugfs, "-R", command, self.spec], _LIMITS)
        return done.stdout

    def listdir(self, path: str) -> list[Entry] | None:
        """Entries of directory ``path`` (None when it does not exist or is not a directory)."""
        out = self.request(f"ls -p {q(path)}").decode("utf-8", "surrogateescape")
        entries = []
        for line in out.splitlines():
            if not line:
                continue
            m = _LS_LINE.match(line)
            if m is None:
                # A name with a line break cannot be told apart from the next entry.
                raise NotApplicable(f"unparseable entry in {path}")
            name = m.group(5)
            if _UNSAFE_NAME.search(name):
                raise NotApplicable(f"unusual file name in {path}")
            if name not in (".", ".."):
                entries.append(Entry(name, int(m.group(2), 8), int(m.group(3)), int(m.group(4))))
        return entries if out.strip() else None

    def stat(self, path: str) -> Entry | None:
        parent, name = posixpath.split(path)
        for entry in self.listdir(parent) or []:
            if entry.name == name:
                return entry
        return None

    def dump(self, path: str, dest: Path) -> bytes:
        self.request(f"dump {q(path)} {q(str(dest))}")
        return dest.read_bytes()


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise NotApplicable(f"{name} is not installed")
    return found


def _partition_offsets(image: Path) -> list[int]:
    done = run_limited([_tool("sfdisk"), "--json", str(image)], _LIMITS)
    if done.returncode != 0:
        return [0]  # no partition table: maybe a bare file system
    table = json.loads(done.stdout)["partitiontable"]
    size = int(table.get("sectorsize", SECTOR))
    return [int(p["start"]) * size for p in table.get("partitions", [])]


def _ext_state(image: Path, offset: int) -> int | None:
    """The incompat feature bits of an ext file system at ``offset``, or None if not ext."""
    with image.open("rb") as fh:
        fh.seek(offset + 1024)
        sb = fh.read(1024)
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != EXT_MAGIC:
        return None
    return int(struct.unpack_from("<I", sb, 0x60)[0])


def find_ext_root(image: Path) -> _Fs | None:
    """The ext file system of ``image`` that holds /etc/passwd; NotApplicable when it cannot
    be edited offline (journal needs recovery, external journal)."""
    for offset in _partition_offsets(image):
        features = _ext_state(image, offset)
        if features is None:
            continue
        fs = _Fs(image, offset)
        passwd = fs.stat("/etc/passwd")
        if passwd is None or not passwd.is_regular:
            continue
        if features & (NEEDS_RECOVERY | JOURNAL_DEV):
            raise NotApplicable("the root file system's journal needs recovery")
        return fs
    return None


def _walk(fs: _Fs, top: str) -> tuple[list[str], list[str]]:
    """(files and symlinks, directories deepest first) below ``top``, never following links."""
    files: list[str] = []
    dirs: list[str] = []
    for entry in fs.listdir(top) or []:
        path = posixpath.join(top, entry.name)
        if entry.is_dir:
            sub_files, sub_dirs = _walk(fs, path)
            files += sub_files
            dirs += [*sub_dirs, path]
        else:
            files.append(path)
    return files, dirs


def _top_dir(fs: _Fs, path: str) -> bool:
    entry = fs.stat(path)
    if entry is None:
        return False
    if not entry.is_dir:
        raise NotApplicable(f"{path} is not a plain directory")
    return True


def clean_identity(image: Path) -> CleanReport | None:
    """Clean per-instance identity in place on a raw disk image, as ``guestfs.clean_identity``
    does; None when the image needs libguestfs instead (nothing was changed then)."""
    try:
        fs = find_ext_root(image)
        if fs is None:
            return None
        return _clean(image, fs)
    except NotApplicable:
        return None


def _clean(image: Path, fs: _Fs) -> CleanReport:
    script: list[str] = []
    removed: list[str] = []
    emptied: list[str] = []
    edited: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="hostimage-ext4-"))
    try:
        if _top_dir(fs, "/etc/ssh"):
            for entry in fs.listdir("/etc/ssh") or []:
                if entry.name.startswith("ssh_host_") and not entry.is_dir:
                    removed.append(f"/etc/ssh/{entry.name}")
        machine_id = fs.stat("/etc/machine-id")
        if machine_id is not None and machine_id.is_regular:
            script += [
                "rm /etc/machine-id",
                "write /dev/null /etc/machine-id",
                f"sif /etc/machine-id mode 0{machine_id.mode:o}",
                f"sif /etc/machine-id uid {machine_id.uid}",
                f"sif /etc/machine-id gid {machine_id.gid}",
            ]
            emptied.append("/etc/machine-id")
        dbus = fs.stat("/var/lib/dbus/machine-id")
        if dbus is not None and dbus.is_regular:
            removed.append("/var/lib/dbus/machine-id")
        dirs_to_remove: list[str] = []
        for top in EMPTIED_TREES:
            if _top_dir(fs, top):
                files, dirs = _walk(fs, top)
                removed += files
                dirs_to_remove += dirs
        if _top_dir(fs, LOG_TREE):
            files, _ = _walk(fs, LOG_TREE)
            removed += files
        rules = fs.stat("/etc/udev/rules.d/70-persistent-net.rules")
        if rules is not None and not rules.is_dir:
            removed.append("/etc/udev/rules.d/70-persistent-net.rules")
        for folder in NETWORK_SCRIPT_DIRS:
            for entry in fs.listdir(folder) or []:
                if not (entry.is_regular and entry.name.startswith("ifcfg-")):
                    continue
                path = f"{folder}/{entry.name}"
                local = work / entry.name
                original = fs.dump(path, local)
                kept = b"".join(
                    ln for ln in original.splitlines(keepends=True) if not _NIC_BINDING.match(ln)
                )
                if kept != original:
                    local.write_bytes(kept)
                    script += [
                        f"rm {q(path)}",
                        f"write {q(str(local))} {q(path)}",
                        f"sif {q(path)} mode 0{entry.mode:o}",
                        f"sif {q(path)} uid {entry.uid}",
                        f"sif {q(path)} gid {entry.gid}",
                    ]
                    edited.append(path)
        script = [f"rm {q(p)}" for p in removed] + script
        script += [f"rmdir {q(d)}" for d in dirs_to_remove]
        removed += dirs_to_remove
        commands = work / "commands"
        commands.write_text("\n".join(script) + "\n")
        done = run_limited([fs.debugfs, "-w", "-f", str(commands), fs.spec], _LIMITS)
        if done.returncode != 0:
            raise GuestfsError(f"debugfs failed: {done.stderr_text[-500:]}")
        check = run_limited([_tool("e2fsck"), "-fn", fs.spec], _LIMITS)
        if check.returncode != 0:
            raise GuestfsError(
                "The root file system is inconsistent after cleaning: " + check.stdout_text[-500:]
            )
        listings: dict[str, set[str]] = {}
        for parent in {posixpath.dirname(p) for p in removed}:
            listings[parent] = {e.name for e in fs.listdir(parent) or []}
        left = [p for p in removed if posixpath.basename(p) in listings[posixpath.dirname(p)]]
        if left:
            raise GuestfsError(f"Could not remove: {', '.join(left[:5])}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CleanReport(
        root_filesystem=fs.spec.rsplit("?", 1)[-1] if "?" in fs.spec else "whole disk",
        removed=tuple(removed),
        emptied=tuple(emptied),
        edited=tuple(edited),
    )
