"""The identity a VM is built with (SPEC F11): hostname, login user, password, SSH key.

The same rules refuse a bad value when a VM is requested (422) and guard the guest files
when the identity is written, so nothing a request accepts is refused later by the task.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_MAX_LENGTH = 253
# Dot-separated labels of 1-63 letters, digits and inner hyphens (RFC 1123), 253 at most.
HOSTNAME_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*$"
LOGIN_USER_PATTERN = r"^[a-z_][a-z0-9_.-]{0,31}$"
SHA512_CRYPT_PATTERN = r"^\$6\$(?:rounds=[0-9]{1,9}\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}$"
SSH_KEY_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
# One OpenSSH public-key line: type, base64 key, optional comment (no line breaks or NUL).
SSH_KEY_PATTERN = (
    r"^(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp(?:256|384|521)"
    r"|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [^\r\n\x00]*)?$"
)

_HOSTNAME = re.compile(HOSTNAME_PATTERN)
_USER = re.compile(LOGIN_USER_PATTERN)
_SHA512_CRYPT = re.compile(SHA512_CRYPT_PATTERN)
_SSH_KEY = re.compile(SSH_KEY_PATTERN)
# Characters a password line cannot carry into /etc/shadow's hashing tools.
_PASSWORD_FORBIDDEN = re.compile(r"[\r\n\x00]")


def valid_hostname(name: str) -> bool:
    """Whether ``name`` is a hostname a guest accepts: RFC 1123 labels joined by dots, at
    most 253 characters."""
    return len(name) <= HOSTNAME_MAX_LENGTH and _HOSTNAME.fullmatch(name) is not None


def valid_login_user(name: str) -> bool:
    """Whether ``name`` is a Linux login name: lowercase letter or ``_`` first, then up to
    31 lowercase letters, digits, ``_``, ``.`` or ``-``."""
    return _USER.fullmatch(name) is not None


def valid_sha512_crypt(value: str) -> bool:
    """Whether ``value`` is a SHA-512 crypt string (``$6$[rounds=N$]salt$hash``)."""
    return _SHA512_CRYPT.fullmatch(value) is not None


def valid_guest_password(password: str) -> bool:
    """Whether ``password`` can be hashed for a guest: no line break or NUL character (the
    hashing tool reads one line; a NUL would silently cut the password short)."""
    return _PASSWORD_FORBIDDEN.search(password) is None


def valid_ssh_public_key(key: str) -> bool:
    """Whether ``key`` (surrounding blanks ignored) is one OpenSSH public-key line whose
    base64 part decodes to a key of the type it names."""
    line = key.strip()
    if _SSH_KEY.fullmatch(line) is None:
        return False
    kind, blob = line.split(" ")[:2]
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) < 4:
        return False
    (length,) = struct.unpack(">I", raw[:4])
    return raw[4 : 4 + length] == kind.encode() and len(raw) > 4 + length


def hostname_from(name: str) -> str:
    """A valid hostname made from a display name (for a VM given none): letters and digits
    kept, every other run of characters one hyphen, each label at most 63 characters;
    ``server`` when nothing is left."""
    labels = []
    for part in name.lower().split("."):
        label = re.sub(r"[^a-z0-9]+", "-", part.encode("ascii", "ignore").decode())
        label = label.strip("-")[:63].strip("-")
        if label:
            labels.append(label)
    out = ".".join(labels)[:HOSTNAME_MAX_LENGTH].strip(".-")
    return out if out and valid_hostname(out) else "server"
