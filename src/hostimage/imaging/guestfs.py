"""Clean (F1) and deploy (F11) per-instance identity on a disk image's Linux filesystem.

Each public call launches one libguestfs appliance: a ``guestfish --listen`` server holds it
and every step is a ``guestfish --remote`` command given as an argv list, or a batch script
whose arguments are fully escaped. Guest content is untrusted: removals never follow
symlinks, files are only rewritten when they are regular files, and everything happens inside
the appliance, never on host mounts. Network config files are read out of the appliance as
bounded bytes, planned in Python (``imaging/netconfig``) and written back through it. The
image must be a private copy: it is written in place.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from hostimage.domain import identity
from hostimage.imaging import netconfig
from hostimage.imaging.guestfish import DEFAULT_LIMITS, Guestfish, GuestfsError, GuestfsLimits
from hostimage.imaging.netconfig import NetworkChange, NetworkPlan, StaticNetwork


class IdentityError(GuestfsError):
    """The requested identity is invalid, or does not fit the guest (e.g. unknown user)."""

    status = 400
    code = "invalid_identity"
    title = "Invalid identity"


@dataclass(frozen=True)
class CleanReport:
    """What ``clean_identity`` did, as guest paths, in the order it did it. ``network`` says,
    per network config file, what was reset (JSON-friendly: ``asdict`` goes to the log)."""

    root_filesystem: str | None
    removed: tuple[str, ...] = ()
    emptied: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    skipped_reason: str | None = None
    network: tuple[NetworkChange, ...] = ()


@dataclass(frozen=True)
class DeployReport:
    """What ``deploy_identity`` wrote into the guest; ``network`` as in ``CleanReport``."""

    root_filesystem: str | None
    hostname: str | None = None
    written: tuple[str, ...] = ()
    password_set: bool = False
    ssh_key_added: bool = False
    skipped_reason: str | None = None
    network: tuple[NetworkChange, ...] = ()


_MACHINE_ID = re.compile(r"[0-9a-f]{32}")


def _display(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _root(fish: Guestfish) -> str | None:
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
    with Guestfish(path, fmt, limits, readonly=True) as fish:
        return _root(fish)


def clean_identity(
    path: Path | str, fmt: str, *, limits: GuestfsLimits = DEFAULT_LIMITS
) -> CleanReport:
    """Remove the template's per-instance identity from the image at ``path``, in place.

    Removes SSH host keys, empties /etc/machine-id (the file stays) and removes a regular
    /var/lib/dbus/machine-id, removes cloud-init state, deletes every non-directory under
    /var/log (directories stay), empties /tmp and /var/tmp, removes the persistent-net udev
    rules and resets the network configs that pin the template's addresses or MACs to DHCP
    on the first interface (``netconfig.plan_network``; ``report.network`` lists each file).
    The hostname and all other data stay. Without a filesystem holding /etc the report has
    ``skipped_reason`` set.
    Raises ``QemuImgError`` for an image that refers to other files (backing or data file)
    and ``GuestfsError`` if the appliance fails.
    """
    with Guestfish(path, fmt, limits, readonly=False) as fish:
        root = _root(fish)
        if root is None:
            return CleanReport(None, skipped_reason="No filesystem with /etc was found.")
        fish.call("mount", root, "/")
        removed: list[str] = []
        emptied: list[str] = []
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
        plan = netconfig.plan_network(netconfig.collect(_Reader(fish)))
        net_removed, edited = _apply(fish, plan)
        removed += net_removed
        fish.call("umount-all")
        return CleanReport(
            root,
            removed=tuple(map(_display, removed)),
            emptied=tuple(emptied),
            edited=tuple(map(_display, edited)),
            network=plan.changes,
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
    network: StaticNetwork | None = None,
    limits: GuestfsLimits = DEFAULT_LIMITS,
) -> DeployReport:
    """Give the image at ``path`` a new identity, in place.

    Writes /etc/hostname (and the 127.0.1.1 line of /etc/hosts if there is one) and
    /etc/machine-id; with ``password_hash`` (a ``$6$`` SHA-512 crypt string) replaces the
    password field of ``login_user`` in /etc/shadow; with ``ssh_public_key`` appends it to the
    user's ~/.ssh/authorized_keys (home from /etc/passwd; .ssh 0700, file 0600, owned by the
    user). Resets the network configs as ``clean_identity`` does, except that with
    ``network`` the first interface gets that static address (in every family that configures
    one; in a new file when none does — ``netconfig.plan_network``); no MAC is ever written.
    Every input is validated, the user looked up and the network planned before anything is
    written. Raises ``IdentityError`` for invalid input or a user missing from /etc/passwd or
    /etc/shadow, ``UnsupportedNetwork`` when the static address has nowhere to go,
    ``QemuImgError`` for an image that refers to other files, ``GuestfsError`` if the
    appliance fails. Without a filesystem holding /etc nothing is written and the report has
    ``skipped_reason`` set.
    """
    _validate(hostname, machine_id, login_user, password_hash, ssh_public_key)
    with Guestfish(path, fmt, limits, readonly=False) as fish:
        root = _root(fish)
        if root is None:
            return DeployReport(None, skipped_reason="No filesystem with /etc was found.")
        fish.call("mount", root, "/")
        uid, gid, home = _passwd_entry(_read_regular(fish, "/etc/passwd"), login_user)
        shadow = None
        if password_hash is not None:
            shadow = _set_password(_read_regular(fish, "/etc/shadow"), login_user, password_hash)
        plan = netconfig.plan_network(netconfig.collect(_Reader(fish)), network)
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
        written += _apply(fish, plan)[1]
        fish.call("umount-all")
        return DeployReport(
            root,
            hostname=hostname,
            written=tuple(map(_display, written)),
            password_set=shadow is not None,
            ssh_key_added=ssh_public_key is not None,
            network=plan.changes,
        )


_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "link"}


class _Reader:
    """``netconfig.GuestReader`` over the appliance (it never follows the last component;
    ``collect`` checks the parents)."""

    def __init__(self, fish: Guestfish) -> None:
        self.fish = fish

    def stat(self, path: str) -> tuple[str, int] | None:
        found = self.fish.lstat(path)
        if found is None:
            return None
        return _KINDS.get(found[0], "other"), found[1]

    def names(self, directory: str) -> list[str]:
        return self.fish.listing("ls0", directory)

    def read(self, files: list[tuple[str, int]]) -> list[bytes]:
        out = []
        for path, size in files:
            data = self.fish.read(path)
            if len(data) != size:
                raise GuestfsError(f"{_display(path)} changed while it was read.")
            out.append(data)
        return out


def _apply(fish: Guestfish, plan: NetworkPlan) -> tuple[list[str], list[str]]:
    """Make the plan's edits; return (paths removed, paths written). Checks every one."""
    gone = [e.path for e in plan.edits if e.data is None]
    removed = fish.remove(gone, "rm")
    if removed != gone:
        left = sorted(set(gone) - set(removed))
        raise GuestfsError(f"Could not remove {', '.join(map(_display, left[:5]))}.")
    written = []
    for edit in plan.edits:
        if edit.data is None:
            continue
        if fish.kind(edit.path) not in (None, stat.S_IFREG):
            raise GuestfsError(f"{_display(edit.path)} is not a regular file in the guest.")
        new = fish.kind(edit.path) is None
        fish.write(edit.path, edit.data)
        if new:
            fish.call("chown", "0", "0", edit.path)
            fish.call("chmod", f"0{edit.mode or 0o644:o}", edit.path)
        written.append(edit.path)
    return removed, written


def _validate(
    hostname: str,
    machine_id: str,
    user: str,
    password_hash: str | None,
    ssh_public_key: str | None,
) -> None:
    # The request was checked with the same rules (hostimage.domain.identity): what the API
    # accepts is never refused here.
    if not identity.valid_hostname(hostname):
        raise IdentityError(f"{hostname!r} is not a valid hostname.")
    if not _MACHINE_ID.fullmatch(machine_id):
        raise IdentityError("The machine id must be 32 lowercase hexadecimal digits.")
    if not identity.valid_login_user(user):
        raise IdentityError(f"{user!r} is not a valid login user name.")
    if password_hash is not None and not identity.valid_sha512_crypt(password_hash):
        raise IdentityError("The password hash must be a SHA-512 crypt string ($6$...).")
    if ssh_public_key is not None and not identity.valid_ssh_public_key(ssh_public_key):
        raise IdentityError("The SSH public key must be one line in OpenSSH format.")


def _read_regular(fish: Guestfish, path: str) -> bytes:
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


def _replace(fish: Guestfish, path: str, data: bytes) -> None:
    kind = fish.kind(path)
    if kind == stat.S_IFDIR:
        raise GuestfsError(f"{path} is a directory in the guest.")
    if kind not in (None, stat.S_IFREG):
        # Writing through a symlink could land anywhere in the guest; replace the link.
        fish.call("rm", path)
    fish.write(path, data)


def _add_key(fish: Guestfish, key: str, uid: int, gid: int, home: str) -> str:
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
