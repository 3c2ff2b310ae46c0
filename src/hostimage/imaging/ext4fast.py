"""Identity cleaning without an appliance, for the common case: an ext2/3/4 root file system
with a clean journal on a raw disk image.

e2fsprogs' ``debugfs`` edits the file system directly in the image file (``?offset=`` reaches
the partition), which takes well under a second where a libguestfs appliance launch takes
tens of seconds without KVM. debugfs, e2fsck and sfdisk parse tenant-controlled bytes, so
every one of them runs in the bubblewrap sandbox (``imaging/sandbox.py``): no network, no
capabilities, nothing of the host visible but ``/usr``, only the image copy writable (and
only for the one editing step), with CPU, memory, file-size and time limits. When the sandbox
cannot be set up, nothing runs and the caller uses libguestfs. The worker itself only reads
the 1 KiB ext superblock (a fixed-layout struct) and the network config files' text, which
it parses as bounded, untrusted data (``imaging/netconfig``).

Anything out of the ordinary — no partition table we can read, another file system, a
journal that needs recovery, a top directory that is a symlink, a name with control
characters, a tool that fails or hits a limit before the edit — returns None and the caller
uses libguestfs. After the edit, ``e2fsck -fn`` must find the file system consistent and
every removed path must be gone and every written file read back as written.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from hostimage.imaging import netconfig, sandbox
from hostimage.imaging.guestfish import GuestfsError
from hostimage.imaging.guestfs import CleanReport
from hostimage.imaging.limits import Completed, Limits

SECTOR = 512
EXT_MAGIC = 0xEF53
# Superblock s_feature_incompat bits that mean "do not edit offline".
NEEDS_RECOVERY, JOURNAL_DEV = 0x4, 0x8
# debugfs takes "…" with "" for a quote; control characters and backslashes we leave alone.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\\]")
# One line of ``ls -p``: /inode/mode/uid/gid/name/size/
_LS_LINE = re.compile(r"^/(\d+)/([0-7]+)/(\d+)/(\d+)/([^/]*)/(\d*)/$")
# Well under run_limited's 16 MiB of captured output.
_CAT_BATCH_BYTES = 8 << 20
_LIMITS = Limits(cpu_seconds=120, address_space_bytes=1 << 30, timeout_seconds=120.0)

# Directories emptied recursively (kept themselves), and directories whose files only go.
EMPTIED_TREES = ("/var/lib/cloud", "/tmp", "/var/tmp")
LOG_TREE = "/var/log"


class NotApplicable(Exception):
    """The fast path does not handle this image; use libguestfs."""


@dataclass(frozen=True)
class Entry:
    name: str
    mode: int
    uid: int
    gid: int
    size: int = 0

    @property
    def is_dir(self) -> bool:
        return self.mode & 0o170000 == 0o040000

    @property
    def is_regular(self) -> bool:
        return self.mode & 0o170000 == 0o100000

    @property
    def kind(self) -> str:
        """The kind ``netconfig`` readers report."""
        if self.is_dir:
            return "dir"
        if self.is_regular:
            return "file"
        return "link" if self.mode & 0o170000 == 0o120000 else "other"


def q(path: str) -> str:
    """``path`` quoted for a debugfs command line."""
    return '"' + path.replace('"', '""') + '"'


def _run(
    argv: list[str], image: Path, *, write: bool = False, readable: tuple[Path, ...] = ()
) -> Completed:
    """Run a tool on ``image`` in the sandbox: the image is writable only when ``write``, and
    no file may grow past the image's size. A tool that could not run, failed to start or
    hit a limit raises ``NotApplicable`` (so far nothing was written, or the caller checks)."""
    limits = replace(_LIMITS, file_size_bytes=max(image.stat().st_size, 1 << 20))
    try:
        done = sandbox.run(
            argv,
            limits,
            readable=readable if write else (*readable, image),
            writable=(image,) if write else (),
        )
    except (sandbox.SandboxUnavailable, OSError) as exc:
        raise NotApplicable(str(exc)) from exc
    if done.timed_out or done.returncode < 0 or done.returncode > 128:
        raise NotApplicable(f"{Path(argv[0]).name} was stopped (a limit was reached)")
    return done


def _entries(path: str, lines: list[str]) -> list[Entry] | None:
    """The entries of one ``ls -p`` listing of ``path``; None when it lists nothing (no such
    directory)."""
    entries = []
    for line in lines:
        if not line:
            continue
        m = _LS_LINE.match(line)
        if m is None:
            # A name with a line break cannot be told apart from the next entry.
            raise NotApplicable(f"unparseable entry in {path}")
        name = m.group(5)
        if _UNSAFE_NAME.search(name):
            raise NotApplicable(f"unusual file name in {path}")
        if name not in ("", ".", ".."):  # "" is an unused slot (lost+found has many)
            mode, uid, gid = int(m.group(2), 8), int(m.group(3)), int(m.group(4))
            entries.append(Entry(name, mode, uid, gid, int(m.group(6) or 0)))
    return entries if any(line.strip() for line in lines) else None


def _write_commands(path: Path, commands: list[str]) -> None:
    path.write_bytes(("\n".join(commands) + "\n").encode("utf-8", "surrogateescape"))


class _Fs:
    """One ext file system inside a raw image, reached with debugfs at a byte offset."""

    def __init__(self, image: Path, offset: int) -> None:
        self.image = image
        self.spec = f"{image}?offset={offset}" if offset else str(image)
        self.debugfs = _tool("debugfs")
        self._listings: dict[str, list[Entry] | None] = {}

    def request(self, command: str) -> bytes:
        done = _run([self.debugfs, "-R", command, self.spec], self.image)
        if done.returncode != 0:
            raise NotApplicable(f"debugfs failed: {done.stderr_text[-200:]}")
        return done.stdout

    def listdir(self, path: str, *, fresh: bool = False) -> list[Entry] | None:
        """Entries of directory ``path`` (None when it does not exist or is not a directory);
        listings are kept until ``fresh`` asks for a new one."""
        if fresh or path not in self._listings:
            out = self.request(f"ls -p {q(path)}").decode("utf-8", "surrogateescape")
            self._listings[path] = _entries(path, out.splitlines())
        return self._listings[path]

    def prefetch(self, paths: Iterable[str], *, fresh: bool = False) -> None:
        """List many directories with one debugfs run (each sandboxed run costs tens of
        milliseconds); the listings are kept as ``listdir`` keeps its own."""
        todo = [p for p in dict.fromkeys(paths) if fresh or p not in self._listings]
        if not todo:
            return
        commands = [f"ls -p {q(p)}" for p in todo]
        scratch = Path(tempfile.mkdtemp(prefix="hostimage-ext4-"))
        try:
            _write_commands(scratch / "commands", commands)
            argv = [self.debugfs, "-f", str(scratch / "commands"), self.spec]
            done = _run(argv, self.image, readable=(scratch,))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if done.returncode != 0:
            raise NotApplicable(f"debugfs failed: {done.stderr_text[-200:]}")
        # debugfs echoes each command as "debugfs: <command>"; a listing line starts with
        # "/" and a name cannot hold one, so no entry can pass for an echo.
        sections: list[list[str]] = [[] for _ in todo]
        current = -1
        for line in done.stdout.decode("utf-8", "surrogateescape").splitlines():
            if current + 1 < len(commands) and line == f"debugfs: {commands[current + 1]}":
                current += 1
            elif current >= 0:
                sections[current].append(line)
            elif line.strip():
                raise NotApplicable("unexpected debugfs output")
        if current != len(commands) - 1:
            raise NotApplicable("debugfs did not list every directory")
        for path, lines in zip(todo, sections, strict=True):
            self._listings[path] = _entries(path, lines)

    def stat(self, path: str, *, fresh: bool = False) -> Entry | None:
        parent, name = posixpath.split(path)
        for entry in self.listdir(parent, fresh=fresh) or []:
            if entry.name == name:
                return entry
        return None

    def cat(self, files: list[tuple[str, int]]) -> list[bytes]:
        """The contents of regular files given as (path, size), read with few debugfs runs."""
        out: list[bytes] = []
        batch: list[tuple[str, int]] = []
        for path, size in files:
            if batch and sum(s for _, s in batch) + size > _CAT_BATCH_BYTES:
                out += self._cat(batch)
                batch = []
            batch.append((path, size))
        return out + (self._cat(batch) if batch else [])

    def _cat(self, files: list[tuple[str, int]]) -> list[bytes]:
        commands = [f"cat {q(path)}" for path, _ in files]
        scratch = Path(tempfile.mkdtemp(prefix="hostimage-ext4-"))
        try:
            _write_commands(scratch / "commands", commands)
            argv = [self.debugfs, "-f", str(scratch / "commands"), self.spec]
            done = _run(argv, self.image, readable=(scratch,))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        # The output is each command echoed as "debugfs: <command>\n" followed by exactly
        # the file's bytes: read by the known sizes, so no content can pass for an echo.
        out, pos = [], 0
        for command, (path, size) in zip(commands, files, strict=True):
            echo = f"debugfs: {command}\n".encode("utf-8", "surrogateescape")
            if done.stdout[pos : pos + len(echo)] != echo:
                raise NotApplicable(f"could not read {path}")
            pos += len(echo)
            out.append(done.stdout[pos : pos + size])
            pos += size
        if pos != len(done.stdout):  # also catches output cut short
            raise NotApplicable("unexpected debugfs output")
        return out


class _Reader:
    """``netconfig.GuestReader`` over debugfs in the sandbox."""

    def __init__(self, fs: _Fs) -> None:
        self.fs = fs

    def stat(self, path: str) -> tuple[str, int] | None:
        entry = self.fs.stat(path)
        return None if entry is None else (entry.kind, entry.size)

    def names(self, directory: str) -> list[str]:
        return [entry.name for entry in self.fs.listdir(directory) or []]

    def read(self, files: list[tuple[str, int]]) -> list[bytes]:
        return self.fs.cat(files)


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise NotApplicable(f"{name} is not installed")
    if not sandbox.visible(found):
        raise NotApplicable(f"{found} is outside the directories the sandbox shows")
    return found


def _partition_offsets(image: Path) -> list[int]:
    done = _run([_tool("sfdisk"), "--json", str(image)], image)
    if done.returncode != 0:
        return [0]  # no partition table: maybe a bare file system
    try:
        table = json.loads(done.stdout)["partitiontable"]
        size = int(table.get("sectorsize", SECTOR))
        return [int(p["start"]) * size for p in table.get("partitions", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NotApplicable("unexpected partition table listing") from exc


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
    """(files and symlinks, directories deepest first) below ``top``, never following links;
    one debugfs run per level of the tree."""
    files: list[str] = []
    dirs: list[str] = []
    level = [top]
    while level:
        fs.prefetch(level)
        below: list[str] = []
        for directory in level:
            for entry in fs.listdir(directory) or []:
                path = posixpath.join(directory, entry.name)
                (below if entry.is_dir else files).append(path)
        dirs += below
        level = below
    return files, sorted(dirs, key=lambda d: d.count("/"), reverse=True)


def _top_dir(fs: _Fs, path: str) -> bool:
    entry = fs.stat(path)
    if entry is None:
        return False
    if not entry.is_dir:
        raise NotApplicable(f"{path} is not a plain directory")
    return True


def clean_identity(image: Path) -> CleanReport | None:
    """Clean per-instance identity in place on a raw disk image, with the same result as
    ``guestfs.clean_identity`` (network configs included); None when the image needs
    libguestfs instead or the sandbox cannot be set up (nothing was changed then). Raises
    ``GuestfsError`` when the edit ran but its result does not check out."""
    try:
        fs = find_ext_root(image)
        if fs is None:
            return None
        return _clean(image, fs)
    except NotApplicable:
        return None


@dataclass
class _Script:
    """The debugfs commands of one edit, and what they should leave behind."""

    work: Path
    commands: list[str]
    removed: list[str]
    written: dict[str, bytes]

    def replace(self, fs: _Fs, path: str, data: bytes, new_mode: int | None) -> None:
        """Give ``path`` the content ``data``: an existing file keeps owner and mode."""
        local = self.work / f"content-{len(self.written)}"
        local.write_bytes(data)
        entry = fs.stat(path)
        if entry is not None:
            mode, uid, gid = entry.mode, entry.uid, entry.gid
            self.commands.append(f"rm {q(path)}")
        else:
            mode, uid, gid = 0o100000 | (new_mode or 0o644), 0, 0
        self.commands += [
            f"write {q(str(local))} {q(path)}",
            f"sif {q(path)} mode 0{mode:o}",
            f"sif {q(path)} uid {uid}",
            f"sif {q(path)} gid {gid}",
        ]
        self.written[path] = data


def _clean(image: Path, fs: _Fs) -> CleanReport:
    fs.prefetch(["/", "/etc", "/etc/ssh", "/var", "/var/lib", "/var/lib/dbus", "/etc/udev"])
    fs.prefetch(["/etc/udev/rules.d", *netconfig.DIRECTORIES])
    work = Path(tempfile.mkdtemp(prefix="hostimage-ext4-"))
    try:
        script = _Script(work, [], [], {})
        emptied: list[str] = []
        if _top_dir(fs, "/etc/ssh"):
            for entry in fs.listdir("/etc/ssh") or []:
                if entry.name.startswith("ssh_host_") and not entry.is_dir:
                    script.removed.append(f"/etc/ssh/{entry.name}")
        machine_id = fs.stat("/etc/machine-id")
        if machine_id is not None and machine_id.is_regular:
            script.replace(fs, "/etc/machine-id", b"", None)
            emptied.append("/etc/machine-id")
        dbus = fs.stat("/var/lib/dbus/machine-id")
        if dbus is not None and dbus.is_regular:
            script.removed.append("/var/lib/dbus/machine-id")
        dirs_to_remove: list[str] = []
        for top in EMPTIED_TREES:
            if _top_dir(fs, top):
                files, dirs = _walk(fs, top)
                script.removed += files
                dirs_to_remove += dirs
        if _top_dir(fs, LOG_TREE):
            script.removed += _walk(fs, LOG_TREE)[0]
        rules = fs.stat("/etc/udev/rules.d/70-persistent-net.rules")
        if rules is not None and not rules.is_dir:
            script.removed.append("/etc/udev/rules.d/70-persistent-net.rules")
        plan = netconfig.plan_network(netconfig.collect(_Reader(fs)))
        edited: list[str] = []
        for edit in plan.edits:
            if edit.data is None:
                script.removed.append(edit.path)
            else:
                script.replace(fs, edit.path, edit.data, edit.mode)
                edited.append(edit.path)
        commands = [f"rm {q(p)}" for p in script.removed] + script.commands
        commands += [f"rmdir {q(d)}" for d in dirs_to_remove]
        removed = script.removed + dirs_to_remove
        _write_commands(work / "commands", commands)
        argv = [fs.debugfs, "-w", "-f", str(work / "commands"), fs.spec]
        try:
            done = _run(argv, image, write=True, readable=(work,))
            if done.returncode != 0:
                raise GuestfsError(f"debugfs failed: {done.stderr_text[-500:]}")
            _check(image, fs, removed, script.written)
        except NotApplicable as exc:
            # The image may be edited by now: no fallback, the caller starts from a new copy.
            raise GuestfsError(f"Editing the root file system failed: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CleanReport(
        root_filesystem=fs.spec.rsplit("?", 1)[-1] if "?" in fs.spec else "whole disk",
        removed=tuple(removed),
        emptied=tuple(emptied),
        edited=tuple(edited),
        network=plan.changes,
    )


def _check(image: Path, fs: _Fs, removed: list[str], written: dict[str, bytes]) -> None:
    check = _run([_tool("e2fsck"), "-fn", fs.spec], image)
    if check.returncode != 0:
        raise GuestfsError(
            "The root file system is inconsistent after cleaning: " + check.stdout_text[-500:]
        )
    parents = sorted({posixpath.dirname(p) for p in (*removed, *written)})
    fs.prefetch(parents, fresh=True)
    left = [p for p in removed if fs.stat(p) is not None]
    if left:
        raise GuestfsError(f"Could not remove: {', '.join(left[:5])}")
    entries = {path: fs.stat(path) for path in written}
    bad = [p for p, e in entries.items() if e is None or not e.is_regular]
    if not bad:
        found = fs.cat([(p, e.size) for p, e in entries.items() if e is not None])
        bad = [p for p, data in zip(written, found, strict=True) if data != written[p]]
    if bad:
        raise GuestfsError(f"Could not rewrite: {', '.join(bad[:5])}")
