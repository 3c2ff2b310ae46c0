"""Clean (F1) and deploy (F11) per-instance identity on a disk image's Linux filesystem.

Each public call launches one libguestfs appliance: a ``guestfish --listen`` server holds it
and every step is a ``guestfish --remote`` command given as an argv list, or a batch script
whose arguments are fully escaped. Guest content is untrusted: removals never follow
symlinks, files are only rewritten when they are regular files, and everything happens inside
the appliance, never on host mounts. The image must be a private copy: it is written in place.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import signal
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from hostimage.errors import HostImageError
from hostimage.imaging import qemu_img
from hostimage.imaging.limits import Limits, run_limited


@dataclass(frozen=True)
class GuestfsLimits:
    """Wall-clock limits for the appliance launch and for each command, and the CPU time the
    appliance (guestfish server and its qemu) may use in total."""

    launch_timeout: float = 600.0
    command_timeout: float = 300.0
    cpu_seconds: int | None = 3600


DEFAULT_LIMITS = GuestfsLimits()


class GuestfsError(HostImageError):
    """libguestfs could not be started or a step on the guest filesystem failed."""

    code = "guestfs_failed"
    title = "Guest filesystem operation failed"


class IdentityError(GuestfsError):
    """The requested identity is invalid, or does not fit the guest (e.g. unknown user)."""

    status = 400
    code = "invalid_identity"
    title = "Invalid identity"


@dataclass(frozen=True)
class CleanReport:
    """What ``clean_identity`` did, as guest paths, in the order it did it."""

    root_filesystem: str | None
    removed: tuple[str, ...] = ()
    emptied: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    skipped_reason: str | None = None


@dataclass(frozen=True)
class DeployReport:
    """What ``deploy_identity`` wrote into the guest."""

    root_filesystem: str | None
    hostname: str | None = None
    written: tuple[str, ...] = ()
    password_set: bool = False
    ssh_key_added: bool = False
    skipped_reason: str | None = None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Validation patterns are used with fullmatch, so a trailing newline never slips through.
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_MACHINE_ID = re.compile(r"[0-9a-f]{32}")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_SHA512_CRYPT = re.compile(r"\$6\$(?:rounds=[0-9]{1,9}\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}")
_SSH_KEY = re.compile(
    r"(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp(?:256|384|521)"
    r"|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [^\r\n\x00]*)?"
)
_NIC_BINDING = re.compile(rb"^\s*(?:HWADDR|MACADDR|UUID)\s*=")
_SAFE_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-")
_NETWORK_SCRIPT_DIRS = ("/etc/sysconfig/network-scripts", "/etc/sysconfig/network")

# Once KVM has failed to start an appliance in this process, later launches go straight to
# TCG instead of paying for the failed attempt again.
_kvm_broken = False


class _Guestfish:
    """One appliance behind a ``guestfish --listen`` server, driven with ``--remote``."""

    def __init__(self, path: Path | str, fmt: str, limits: GuestfsLimits, readonly: bool) -> None:
        self._path = str(Path(path).absolute())
        self._fmt = fmt
        self._qemu_fmt = qemu_img.qemu_format(fmt)
        self._limits = limits
        self._readonly = readonly
        self._binary = shutil.which("guestfish")
        self._tmp = Path(tempfile.mkdtemp(prefix="hostimage-guestfs-"))
        self._log = (self._tmp / "server.log").open("w+b")
        self._pid: int | None = None
        self._pgid = 0
        # A server that missed a deadline is still busy and would not hear "exit" in time.
        self._hung = False
        self._env: dict[str, str] = {}

    def __enter__(self) -> _Guestfish:
        global _kvm_broken
        if self._binary is None:
            self.close()
            raise GuestfsError("guestfish is not installed (Debian package libguestfs-tools).")
        try:
            # Refuses images that point at other host files before the appliance opens them.
            qemu_img.info(self._path, self._fmt)
            chosen = os.environ.get("LIBGUESTFS_BACKEND_SETTINGS")
            kvm = chosen is None and not _kvm_broken and os.access("/dev/kvm", os.R_OK | os.W_OK)
            try:
                self._launch(chosen if chosen is not None else ("" if kvm else "force_tcg"))
            except GuestfsError:
                if not kvm or self._hung:
                    raise
                _kvm_broken = True
                self._launch("force_tcg")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _launch(self, settings: str) -> None:
        self._stop_server()
        # Debug and trace output would flood the server log that errors are read from;
        # the backend settings are the ones chosen by the caller.
        dropped = ("LIBGUESTFS_DEBUG", "LIBGUESTFS_TRACE", "LIBGUESTFS_BACKEND_SETTINGS")
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env["LIBGUESTFS_BACKEND"] = "direct"
        if settings:
            env["LIBGUESTFS_BACKEND_SETTINGS"] = settings
        self._env = env
        argv = [str(self._binary), "--listen", f"--format={self._qemu_fmt}", "-a", self._path]
        if self._readonly:
            argv.insert(2, "--ro")
        limits = Limits(self._limits.cpu_seconds, None, 60.0)
        done = run_limited(argv, limits, env=env, stderr_to=self._log)
        found = re.search(rb"GUESTFISH_PID=(\d+)", done.stdout)
        if done.timed_out or done.returncode != 0 or found is None:
            raise GuestfsError(f"guestfish could not start: {self._log_since(0) or 'no output'}")
        self._pid = int(found.group(1))
        # The server and its qemu stay in the process group of the process we started.
        with contextlib.suppress(ProcessLookupError):
            group = os.getpgid(self._pid)
            self._pgid = group if group != os.getpgrp() else 0
        self.call("run", timeout=self._limits.launch_timeout)

    def call(self, command: str, *args: str, timeout: float | None = None) -> str:
        """Run one command; return its stdout; raise ``GuestfsError`` if it failed."""
        # The "-" prefix keeps the server alive on errors; errors then only show in its log.
        argv = [str(self._binary), f"--remote={self._pid}", "--", f"-{command}", *args]
        return self._remote(argv, None, timeout or self._limits.command_timeout, command)

    def probe(self, command: str, *args: str) -> str | None:
        """Like ``call`` but a failure (e.g. a missing path) gives None."""
        try:
            return self.call(command, *args)
        except GuestfsError:
            if not self._server_alive():
                raise
            return None

    def batch(self, commands: list[tuple[str, ...]]) -> None:
        """Run many commands in one client process; failures are tolerated (check after)."""
        for start in range(0, len(commands), 500):
            script = b"".join(
                b"-" + name.encode() + b"".join(b" " + _quote(arg) for arg in args) + b"\n"
                for name, *args in commands[start : start + 500]
            )
            argv = [str(self._binary), f"--remote={self._pid}"]
            try:
                self._remote(argv, script, self._limits.command_timeout, "batch")
            except GuestfsError:
                if not self._server_alive():
                    raise

    def _remote(self, argv: list[str], script: bytes | None, timeout: float, what: str) -> str:
        offset = self._log.seek(0, os.SEEK_END)
        done = run_limited(argv, Limits(60, None, timeout), env=self._env, stdin_data=script)
        errors = _errors(self._log_since(offset))
        if done.timed_out:
            self._hung = True
            raise GuestfsError(f"guestfish {what} did not finish within {timeout} seconds.")
        if done.returncode != 0 or errors:
            raise GuestfsError(f"guestfish {what} failed: {errors or done.stderr_text}")
        return done.stdout_text

    def _log_since(self, offset: int) -> str:
        self._log.seek(offset)
        return self._log.read(1 << 20).decode("utf-8", "replace").strip()[:4000]

    def _server_alive(self) -> bool:
        if self._pid is None:
            return False
        try:
            state = Path(f"/proc/{self._pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    def _stop_server(self) -> None:
        if self._pid is None:
            return
        if self._server_alive() and not self._hung:
            # "exit" shuts the appliance down cleanly, flushing every write to the image.
            argv = [str(self._binary), f"--remote={self._pid}", "--", "exit"]
            run_limited(argv, Limits(60, None, 60.0), env=self._env)
            deadline = time.monotonic() + 30
            while self._server_alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        # pgid 0 would mean our own group: never signal that.
        if self._server_alive() and self._pgid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._pgid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self._server_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            # A killed server cannot remove its socket; guestfish documents this fixed place.
            with contextlib.suppress(OSError):
                Path(f"/tmp/.guestfish-{os.geteuid()}/socket-{self._pid}").unlink()
        self._pid = None
        self._hung = False

    def close(self) -> None:
        """Stop the server (and its appliance) and remove the scratch directory."""
        try:
            self._stop_server()
        finally:
            self._log.close()
            shutil.rmtree(self._tmp, ignore_errors=True)

    # Guest filesystem helpers -------------------------------------------------------------

    def kind(self, path: str) -> int | None:
        """The file type bits (``stat.S_IFMT``) of ``path`` without following it, or None."""
        out = self.probe("lstatns", path)
        found = re.search(r"st_mode: (\d+)", out or "")
        return stat.S_IFMT(int(found.group(1))) if found else None

    def listing(self, command: str, directory: str) -> list[str]:
        """``ls0`` (names) or ``find0`` (paths relative to ``directory``), NUL-safe."""
        target = self._tmp / "listing"
        self.call(command, directory, str(target))
        raw = target.read_bytes()
        target.unlink()
        return [os.fsdecode(item) for item in raw.split(b"\0") if item]

    def read(self, path: str) -> bytes:
        target = self._tmp / "download"
        self.call("download", path, str(target))
        data = target.read_bytes()
        target.unlink()
        return data

    def write(self, path: str, data: bytes) -> None:
        """Replace the content of ``path``; an existing file keeps its owner and mode."""
        source = self._tmp / "upload"
        source.write_bytes(data)
        self.call("upload", str(source), path)
        source.unlink()

    def remove(self, paths: list[str], command: str) -> list[str]:
        """Run ``command`` (rm or rm-rf) on every path; return the paths that are now gone."""
        if not paths:
            return []
        self.batch([(command, p) for p in paths])
        left: set[str] = set()
        for parent in sorted({posixpath.dirname(p) for p in paths}):
            left.update(posixpath.join(parent, n) for n in self.listing("ls0", parent))
        return [p for p in paths if p not in left]


def _errors(log: str) -> str:
    lines = [ln.removeprefix("libguestfs: error: ") for ln in log.splitlines()]
    return "; ".join(ln for ln in lines if "error" in ln.lower())


def _quote(arg: str) -> bytes:
    # Every byte outside a small safe set is written as \xHH, so no guest file name can end
    # the quoted string or start another command in the script.
    raw = os.fsencode(arg)
    return b'"' + b"".join(bytes([c]) if c in _SAFE_BYTES else b"\\x%02x" % c for c in raw) + b'"'


def _display(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _root(fish: _Guestfish) -> str | None:
    candidates: list[str] = []
    for line in fish.call("list-filesystems").splitlines():
        device, _, fstype = line.rpartition(": ")
        if device and fstype not in ("swap", "unknown", ""):
            candidates.append(device)
    fallback = None
    for device in candidates:
        if fish.probe("mount-ro", device, "/") is None:
            continue
        has_etc = fish.kind("/etc") == stat.S_IFDIR
        has_passwd = has_etc and fish.kind("/etc/passwd") == stat.S_IFREG
        fish.call("umount-all")
        if has_passwd:
            return device
        if has_etc and fallback is None:
            fallback = device
    return fallback


def find_root(path: Path | str, fmt: str, *, limits: GuestfsLimits = DEFAULT_LIMITS) -> str | None:
    """Return the appliance device name (e.g. ``/dev/sda2``) of the filesystem holding /etc
    (preferring one with /etc/passwd), or None if no filesystem has one. Opens read-only."""
    with _Guestfish(path, fmt, limits, readonly=True) as fish:
        return _root(fish)


def clean_identity(
    path: Path | str, fmt: str, *, limits: GuestfsLimits = DEFAULT_LIMITS
) -> CleanReport:
    """Remove the template's per-instance identity from the image at ``path``, in place.

    Removes SSH host keys, empties /etc/machine-id (the file stays) and removes a regular
    /var/lib/dbus/machine-id, removes cloud-init state, deletes every non-directory under
    /var/log (directories stay), empties /tmp and /var/tmp, removes the persistent-net udev
    rules and strips HWADDR/MACADDR/UUID lines from ifcfg files. The hostname and all other
    data stay. Without a filesystem holding /etc the report has ``skipped_reason`` set.
    Raises ``QemuImgError`` for an image that refers to other files (backing or data file)
    and ``GuestfsError`` if the appliance fails.
    """
    with _Guestfish(path, fmt, limits, readonly=False) as fish:
        root = _root(fish)
        if root is None:
            return CleanReport(None, skipped_reason="No filesystem with /etc was found.")
        fish.call("mount", root, "/")
        removed: list[str] = []
        emptied: list[str] = []
        edited: list[str] = []
        if fish.kind("/etc/ssh") == stat.S_IFDIR:
            keys = [f"/etc/ssh/{n}" for n in fish.listing("ls0", "/etc/ssh")]
            removed += fish.remove(
                sorted(k for k in keys if k.startswith("/etc/ssh/ssh_host_")), "rm"
            )
        if fish.kind("/etc/machine-id") == stat.S_IFREG:
            fish.call("truncate", "/etc/machine-id")
            emptied.append("/etc/machine-id")
        if fish.kind("/var/lib/dbus/machine-id") == stat.S_IFREG:
            removed += fish.remove(["/var/lib/dbus/machine-id"], "rm")
        for directory in ("/var/lib/cloud", "/tmp", "/var/tmp"):
            if fish.kind(directory) == stat.S_IFDIR:
                entries = sorted(f"{directory}/{n}" for n in fish.listing("ls0", directory))
                removed += fish.remove(entries, "rm-rf")
        if fish.kind("/var/log") == stat.S_IFDIR:
            found = ["/var/log" + p for p in fish.listing("find0", "/var/log")]
            parents = {posixpath.dirname(p) for p in found}
            # Empty directories are tried too; rm refuses them, which is what we want.
            removed += fish.remove(sorted(p for p in found if p not in parents), "rm")
        rules = "/etc/udev/rules.d/70-persistent-net.rules"
        if fish.kind(rules) in (stat.S_IFREG, stat.S_IFLNK):
            removed += fish.remove([rules], "rm")
        for directory in _NETWORK_SCRIPT_DIRS:
            if fish.kind(directory) != stat.S_IFDIR:
                continue
            for name in sorted(fish.listing("ls0", directory)):
                ifcfg = f"{directory}/{name}"
                if not name.startswith("ifcfg-") or fish.kind(ifcfg) != stat.S_IFREG:
                    continue
                content = fish.read(ifcfg)
                lines = content.splitlines(keepends=True)
                kept = [ln for ln in lines if not _NIC_BINDING.match(ln)]
                if kept != lines:
                    fish.write(ifcfg, b"".join(kept))
                    edited.append(ifcfg)
        fish.call("umount-all")
        return CleanReport(
            root,
            removed=tuple(map(_display, removed)),
            emptied=tuple(emptied),
            edited=tuple(map(_display, edited)),
        )


def deploy_identity(
    path: Path | str,
    fmt: str,
    *,
    hostname: str,
    machine_id: str,
    login_user: str,
    password_hash: str | None = None,
    ssh_public_key: str | None = None,
    limits: GuestfsLimits = DEFAULT_LIMITS,
) -> DeployReport:
    """Give the image at ``path`` a new identity, in place.

    Writes /etc/hostname (and the 127.0.1.1 line of /etc/hosts if there is one) and
    /etc/machine-id; with ``password_hash`` (a ``$6$`` SHA-512 crypt string) replaces the
    password field of ``login_user`` in /etc/shadow; with ``ssh_public_key`` appends it to the
    user's ~/.ssh/authorized_keys (home from /etc/passwd; .ssh 0700, file 0600, owned by the
    user). Every input is validated and the user is looked up before anything is written.
    Raises ``IdentityError`` for invalid input or a user missing from /etc/passwd or
    /etc/shadow, ``QemuImgError`` for an image that refers to other files, ``GuestfsError``
    if the appliance fails. Without a filesystem holding /etc nothing is written and the
    report has ``skipped_reason`` set.
    """
    _validate(hostname, machine_id, login_user, password_hash, ssh_public_key)
    with _Guestfish(path, fmt, limits, readonly=False) as fish:
        root = _root(fish)
        if root is None:
            return DeployReport(None, skipped_reason="No filesystem with /etc was found.")
        fish.call("mount", root, "/")
        uid, gid, home = _passwd_entry(_read_regular(fish, "/etc/passwd"), login_user)
        shadow = None
        if password_hash is not None:
            shadow = _set_password(_read_regular(fish, "/etc/shadow"), login_user, password_hash)
        written = ["/etc/hostname", "/etc/machine-id"]
        _replace(fish, "/etc/hostname", f"{hostname}\n".encode())
        _replace(fish, "/etc/machine-id", f"{machine_id}\n".encode())
        if fish.kind("/etc/hosts") == stat.S_IFREG:
            hosts = _with_hostname(fish.read("/etc/hosts"), hostname)
            if hosts is not None:
                fish.write("/etc/hosts", hosts)
                written.append("/etc/hosts")
        if shadow is not None:
            fish.write("/etc/shadow", shadow)
            written.append("/etc/shadow")
        if ssh_public_key is not None:
            written.append(_add_key(fish, ssh_public_key.strip(), uid, gid, home))
        fish.call("umount-all")
        return DeployReport(
            root,
            hostname=hostname,
            written=tuple(map(_display, written)),
            password_set=shadow is not None,
            ssh_key_added=ssh_public_key is not None,
        )


def _validate(
    hostname: str,
    machine_id: str,
    user: str,
    password_hash: str | None,
    ssh_public_key: str | None,
) -> None:
    if not _HOSTNAME.fullmatch(hostname):
        raise IdentityError(f"{hostname!r} is not a valid hostname.")
    if not _MACHINE_ID.fullmatch(machine_id):
        raise IdentityError("The machine id must be 32 lowercase hexadecimal digits.")
    if not _USER.fullmatch(user):
        raise IdentityError(f"{user!r} is not a valid login user name.")
    if password_hash is not None and not _SHA512_CRYPT.fullmatch(password_hash):
        raise IdentityError("The password hash must be a SHA-512 crypt string ($6$...).")
    if ssh_public_key is not None and not _SSH_KEY.fullmatch(ssh_public_key.strip()):
        raise IdentityError("The SSH public key must be one line in OpenSSH format.")


def _read_regular(fish: _Guestfish, path: str) -> bytes:
    if fish.kind(path) != stat.S_IFREG:
        raise IdentityError(f"The guest has no regular file {path}.")
    return fish.read(path)


def _passwd_entry(passwd: bytes, user: str) -> tuple[int, int, str]:
    for line in passwd.splitlines():
        fields = line.split(b":")
        if len(fields) >= 7 and fields[0] == user.encode():
            home = posixpath.normpath(os.fsdecode(fields[5]))
            if not (fields[2].isdigit() and fields[3].isdigit() and home.startswith("/")):
                raise IdentityError(f"The /etc/passwd entry of {user!r} is malformed.")
            return int(fields[2]), int(fields[3]), home
    raise IdentityError(f"The login user {user!r} does not exist in the image (/etc/passwd).")


def _set_password(shadow: bytes, user: str, password_hash: str) -> bytes:
    lines = shadow.splitlines(keepends=True)
    for i, line in enumerate(lines):
        fields = line.rstrip(b"\n").split(b":")
        if len(fields) >= 2 and fields[0] == user.encode():
            fields[1] = password_hash.encode()
            lines[i] = b":".join(fields) + b"\n"
            return b"".join(lines)
    raise IdentityError(f"The login user {user!r} has no entry in /etc/shadow.")


def _with_hostname(hosts: bytes, hostname: str) -> bytes | None:
    names = hostname if "." not in hostname else f"{hostname} {hostname.split('.')[0]}"
    lines = hosts.splitlines(keepends=True)
    changed = False
    for i, line in enumerate(lines):
        if line.split()[:1] == [b"127.0.1.1"]:
            lines[i] = f"127.0.1.1\t{names}\n".encode()
            changed = True
    return b"".join(lines) if changed else None


def _replace(fish: _Guestfish, path: str, data: bytes) -> None:
    kind = fish.kind(path)
    if kind == stat.S_IFDIR:
        raise GuestfsError(f"{path} is a directory in the guest.")
    if kind not in (None, stat.S_IFREG):
        # Writing through a symlink could land anywhere in the guest; replace the link.
        fish.call("rm", path)
    fish.write(path, data)


def _add_key(fish: _Guestfish, key: str, uid: int, gid: int, home: str) -> str:
    owner = (str(uid), str(gid))
    home_kind = fish.kind(home)
    if home_kind is None:
        fish.call("mkdir-p", home)
        fish.call("chmod", "0700", home)
        fish.call("chown", *owner, home)
    elif home_kind != stat.S_IFDIR:
        raise IdentityError(f"The home directory {home} is not a directory.")
    ssh_dir = posixpath.join(home, ".ssh")
    ssh_kind = fish.kind(ssh_dir)
    if ssh_kind is None:
        fish.call("mkdir", ssh_dir)
    elif ssh_kind != stat.S_IFDIR:
        raise IdentityError(f"{ssh_dir} is not a directory (a symlink is refused).")
    fish.call("chmod", "0700", ssh_dir)
    fish.call("chown", *owner, ssh_dir)
    keys_path = posixpath.join(ssh_dir, "authorized_keys")
    keys_kind = fish.kind(keys_path)
    if keys_kind not in (None, stat.S_IFREG):
        raise IdentityError(f"{keys_path} is not a regular file (a symlink is refused).")
    existing = fish.read(keys_path) if keys_kind == stat.S_IFREG else b""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    fish.write(keys_path, existing + key.encode() + b"\n")
    fish.call("chmod", "0600", keys_path)
    fish.call("chown", *owner, keys_path)
    return keys_path
